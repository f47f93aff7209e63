//! Slot inputs X̃ = Dᵀ X per example, from the dispatch weights and the un-normalised tokens.

use super::matmul::{Activation, Matmul, MatrixView};

/// X̃ [batch, s, d] = D [batch, m, s]ᵀ · X [batch, m, d].
pub fn slot_inputs(batch: usize, m: usize, s: usize, d: usize) -> Matmul {
    Matmul {
        m: s,
        n: d,
        k: m,
        batch,
        a: MatrixView::transposed(m, s),
        b: MatrixView::row_major(m, d),
        c: MatrixView::row_major(s, d),
        alpha: 1.0,
        bias_batch_stride: None,
        activation: Activation::None,
        accumulate: false,
        normalize_rows: false,
        b_f16: false,
    }
}
