//! The batched expert MLP: slot j = e·p + s goes through expert e, Dense → GELU → Dense.
//!
//! Both Dense layers are one GEMM batched over experts; expert e's rows are its p slots of every
//! example, read from (and written back to) the slot-major [batch, n·p, d] layout with a grouped view.

use super::matmul::{Activation, MatrixView, Matmul};
use crate::layers::Gelu;

/// H [n, batch·p, h] = GELU(X̃_e · W0_e + b0_e) for each expert e.
pub fn dense0(batch: usize, n: usize, p: usize, d: usize, h: usize, gelu: Gelu) -> Matmul {
    Matmul {
        m: batch * p,
        n: h,
        k: d,
        batch: n,
        a: MatrixView::grouped(p, n * p * d, d, p * d),
        b: MatrixView::row_major(d, h),
        c: MatrixView::row_major(batch * p, h),
        alpha: 1.0,
        bias_batch_stride: Some(h),
        activation: Activation::Gelu(gelu),
    }
}

/// Ỹ [batch, n·p, d] = H_e · W1_e + b1_e for each expert e.
pub fn dense1(batch: usize, n: usize, p: usize, d: usize, h: usize) -> Matmul {
    Matmul {
        m: batch * p,
        n: d,
        k: h,
        batch: n,
        a: MatrixView::row_major(batch * p, h),
        b: MatrixView::row_major(h, d),
        c: MatrixView::grouped(p, n * p * d, d, p * d),
        alpha: 1.0,
        bias_batch_stride: Some(d),
        activation: Activation::None,
    }
}
