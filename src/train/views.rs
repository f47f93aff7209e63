//! The GEMMs of a training step as descriptions for the one GEMM engine (`kernels::gemm`): the
//! forward's products in the layouts the backward needs, and every weight and input gradient as a
//! product of views (transposes are views; nothing is copied or transposed in memory).
//!
//! Layouts: tokens are rows [b·m, ·]; a Soft MoE block's slot inputs X̃ are kept *expert-major*
//! ([n, b·p, d]: expert e's rows are its p slots of every example), so that the experts' weight
//! gradients X̃ₑᵀ·dH read them as one plain transposed view, and its expert outputs Ỹ *slot-major*
//! ([b, n·p, d]), so that Y = C·Ỹ and dC = dY·Ỹᵀ read them per example.

use crate::kernels::gemm::{Matmul, MatrixView};

/// y [rows, n] = x [rows, k] · W [k, n] + bias; with `residual`, y += ….
pub fn linear(rows: usize, k: usize, n: usize, residual: bool) -> Matmul {
    Matmul { bias_batch_stride: Some(0), accumulate: residual, ..Matmul::new(rows, n, k) }
}

/// dW [k, n] = xᵀ · dy for y = x [rows, k] · W [k, n]: A is x read transposed.
pub fn weight_grad(rows: usize, k: usize, n: usize) -> Matmul {
    Matmul { a: MatrixView::transposed(rows, k), ..Matmul::new(k, n, rows) }
}

/// dx [rows, k] (+)= dy [rows, n] · Wᵀ for y = x · W [k, n]: B is W read transposed.
pub fn input_grad(rows: usize, k: usize, n: usize, accumulate: bool) -> Matmul {
    Matmul { b: MatrixView::transposed(k, n), accumulate, ..Matmul::new(rows, k, n) }
}

/// As `input_grad` with B the stored transpose Wᵀ [n, k] (row-major, so the vec4 GEMMs can read it):
/// how the trainer runs the weights' input gradients.
pub fn input_grad_from_transpose(rows: usize, k: usize, n: usize, accumulate: bool) -> Matmul {
    Matmul { accumulate, ..Matmul::new(rows, k, n) }
}

/// Slot-major [b, n·p, d] rows addressed expert by expert: expert e (the batch index) row r = (example
/// r / p, slot e·p + r % p).
pub fn slot_major_by_expert(n: usize, p: usize, d: usize) -> MatrixView {
    MatrixView::grouped(p, n * p * d, d, p * d)
}

/// Expert-major [n, b·p, d] rows addressed example by example: example z (the batch index) row j =
/// (expert j / p, row z·p + j % p).
pub fn expert_major_by_example(batch: usize, p: usize, d: usize) -> MatrixView {
    MatrixView::grouped(p, batch * p * d, d, p * d)
}

/// X̃ (expert-major) = Dᵀ X per example, from D [b, m, s] and X [b, m, d]; also dỸ (expert-major) =
/// Cᵀ dY from C and dY.
pub fn slots_from_tokens(batch: usize, m: usize, n: usize, p: usize, d: usize) -> Matmul {
    Matmul { batch, a: MatrixView::transposed(m, n * p), c: expert_major_by_example(batch, p, d), ..Matmul::new(n * p, d, m) }
}

/// H [n, b·p, h] = X̃ₑ · W0ₑ + b0ₑ for every expert e (GELU applied by its own kernel).
pub fn expert_dense0(batch: usize, n: usize, p: usize, d: usize, h: usize) -> Matmul {
    Matmul {
        batch: n,
        a: MatrixView::row_major(batch * p, d),
        b: MatrixView::row_major(d, h),
        c: MatrixView::row_major(batch * p, h),
        bias_batch_stride: Some(h),
        ..Matmul::new(batch * p, h, d)
    }
}

/// Ỹ (slot-major) = Hₑ · W1ₑ + b1ₑ for every expert e.
pub fn expert_dense1(batch: usize, n: usize, p: usize, d: usize, h: usize) -> Matmul {
    Matmul {
        batch: n,
        a: MatrixView::row_major(batch * p, h),
        b: MatrixView::row_major(h, d),
        c: slot_major_by_expert(n, p, d),
        bias_batch_stride: Some(d),
        ..Matmul::new(batch * p, d, h)
    }
}

/// Y (+)= C Ỹ per example (C [b, m, s], Ỹ slot-major); also dX (+)= D dX̃ from D and dX̃ (slot-major).
pub fn tokens_from_slots(batch: usize, m: usize, s: usize, d: usize, accumulate: bool) -> Matmul {
    Matmul { batch, accumulate, ..Matmul::new(m, d, s) }
}

/// dC [b, m, s] = dY · Ỹᵀ per example (Ỹ slot-major, read transposed); also dD = X · dX̃ᵀ.
pub fn token_slot_grad(batch: usize, m: usize, s: usize, d: usize) -> Matmul {
    Matmul { batch, b: MatrixView::transposed(s, d), ..Matmul::new(m, s, d) }
}

/// dWₑ [k, n] = Aₑᵀ · dYₑ for each of `experts` GEMMs with `rows` rows each, A and dY expert-major.
pub fn expert_weight_grad(experts: usize, rows: usize, k: usize, n: usize) -> Matmul {
    Matmul { batch: experts, a: MatrixView::transposed(rows, k), ..Matmul::new(k, n, rows) }
}

/// dHₑ [n, b·p, h] = dỸₑ (expert-major) · W1ₑᵀ, from the stored transposes W1ₑᵀ [d, h].
pub fn expert_dense1_input_grad(batch: usize, n: usize, p: usize, d: usize, h: usize) -> Matmul {
    Matmul { batch: n, ..Matmul::new(batch * p, h, d) }
}

/// dX̃ (slot-major) = dHₑ · W0ₑᵀ, from the stored transposes W0ₑᵀ [h, d].
pub fn expert_dense0_input_grad(batch: usize, n: usize, p: usize, d: usize, h: usize) -> Matmul {
    Matmul { batch: n, c: slot_major_by_expert(n, p, d), ..Matmul::new(batch * p, d, h) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expert_layouts_address_the_same_slot() {
        // Slot j = e·p + s of example z: slot-major at (z·n·p + j)·d, expert-major at ((e·b + z)·p + s)·d.
        let (b, n, p, d) = (3, 4, 2, 5);
        for z in 0..b {
            for e in 0..n {
                for s in 0..p {
                    let j = e * p + s;
                    assert_eq!(slot_major_by_expert(n, p, d).index(e, z * p + s, 1), (z * n * p + j) * d + 1);
                    assert_eq!(expert_major_by_example(b, p, d).index(z, j, 1), ((e * b + z) * p + s) * d + 1);
                }
            }
        }
    }
}
