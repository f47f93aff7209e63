//! Layer output Y = C Ỹ per example.

use super::matmul::{Activation, Matmul, MatrixView};

/// Y [batch, m, d] = C [batch, m, s] · Ỹ [batch, s, d]; with `residual`, Y += C Ỹ.
pub fn combine(batch: usize, m: usize, s: usize, d: usize, residual: bool) -> Matmul {
    Matmul {
        m,
        n: d,
        k: s,
        batch,
        a: MatrixView::row_major(m, s),
        b: MatrixView::row_major(s, d),
        c: MatrixView::row_major(m, d),
        alpha: 1.0,
        bias_batch_stride: None,
        activation: Activation::None,
        accumulate: residual,
        normalize_rows: false,
        b_f16: false,
    }
}
