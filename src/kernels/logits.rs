//! Router logits L = scale · X̂ Φ̂ as a GEMM over all tokens of the batch at once.

use super::matmul::{Activation, Matmul, MatrixView};

/// L [rows, s] = scale · X̂ [rows, d] · Φ̂ [d, s], rows = batch·tokens (examples stay independent:
/// each row is its own dot products).
pub fn logits(rows: usize, d: usize, s: usize, scale: f32) -> Matmul {
    Matmul {
        m: rows,
        n: s,
        k: d,
        batch: 1,
        a: MatrixView::row_major(rows, d),
        b: MatrixView::row_major(d, s),
        c: MatrixView::row_major(rows, s),
        alpha: scale,
        bias_batch_stride: None,
        activation: Activation::None,
        accumulate: false,
        normalize_rows: false,
        b_f16: false,
    }
}
