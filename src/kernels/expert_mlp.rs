//! The batched expert MLP: slot j = e·p + s goes through expert e, Dense → GELU → Dense.
//!
//! Both Dense layers are one GEMM batched over a range of experts (all of them, or as many as one
//! storage binding can hold); expert e's rows are its p slots of every example, read from (and
//! written back to) the slot-major [batch, n·p, d] layout with a grouped view.

use std::ops::Range;

use super::matmul::{Activation, Matmul, MatrixView};
use crate::config::Gelu;

/// H [n, batch·p, h] = GELU(X̃_e · W0_e + b0_e) for e in `experts`; W0 and b0 hold just those experts.
pub fn dense0(batch: usize, n: usize, p: usize, d: usize, h: usize, experts: Range<usize>, gelu: Gelu) -> Matmul {
    Matmul {
        m: batch * p,
        n: h,
        k: d,
        batch: experts.len(),
        a: MatrixView::grouped(p, n * p * d, d, p * d).at(experts.start * p * d),
        b: MatrixView::row_major(d, h),
        c: MatrixView::row_major(batch * p, h).at(experts.start * batch * p * h),
        alpha: 1.0,
        bias_batch_stride: Some(h),
        activation: Activation::Gelu(gelu),
        accumulate: false,
        normalize_rows: false,
        b_f16: false,
    }
}

/// Ỹ [batch, n·p, d] = H_e · W1_e + b1_e for e in `experts`; W1 and b1 hold just those experts.
pub fn dense1(batch: usize, n: usize, p: usize, d: usize, h: usize, experts: Range<usize>) -> Matmul {
    Matmul {
        m: batch * p,
        n: d,
        k: h,
        batch: experts.len(),
        a: MatrixView::row_major(batch * p, h).at(experts.start * batch * p * h),
        b: MatrixView::row_major(h, d),
        c: MatrixView::grouped(p, n * p * d, d, p * d).at(experts.start * p * d),
        alpha: 1.0,
        bias_batch_stride: Some(d),
        activation: Activation::None,
        accumulate: false,
        normalize_rows: false,
        b_f16: false,
    }
}
