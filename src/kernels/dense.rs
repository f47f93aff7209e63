//! A dense layer as a GEMM: Y [rows, n] = act(X [rows, k] · W [k, n] + b), or Y += … as a residual.

use super::matmul::{Activation, Matmul, MatrixView};

pub fn dense(rows: usize, k: usize, n: usize, activation: Activation, residual: bool) -> Matmul {
    Matmul {
        m: rows,
        n,
        k,
        batch: 1,
        a: MatrixView::row_major(rows, k),
        b: MatrixView::row_major(k, n),
        c: MatrixView::row_major(rows, n),
        alpha: 1.0,
        bias_batch_stride: Some(0),
        activation,
        accumulate: residual,
        normalize_rows: false,
        b_f16: false,
    }
}
