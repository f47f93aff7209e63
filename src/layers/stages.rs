//! The layers' GEMM stages as descriptions for the one GEMM engine (`kernels::gemm`): what each
//! stage multiplies and through which views. None is a kernel of its own; each layer turns these
//! into ops with `Matmul::op`, which picks the kernel.
//!
//! Soft MoE: router logits, slot inputs X̃ = DᵀX, the two expert Dense layers, the output Y = CỸ.
//! The sparse MoE layer shares the expert Dense layers; the ViT and the sparse router use `dense`.

use std::ops::Range;

use crate::config::Gelu;
use crate::kernels::gemm::{pack_panels, Activation, Matmul, MatrixView, PANEL};

/// Router logits L [rows, s] = scale · X̂ [rows, d] · Φ̂ [d, s], rows = batch·tokens (examples stay
/// independent: each row is its own dot products).
pub fn logits(rows: usize, d: usize, s: usize, scale: f32) -> Matmul {
    Matmul { alpha: scale, ..Matmul::new(rows, s, d) }
}

/// Slot inputs X̃ [batch, s, d] = D [batch, m, s]ᵀ · X [batch, m, d], from the dispatch weights and
/// the un-normalised tokens.
pub fn slot_inputs(batch: usize, m: usize, s: usize, d: usize) -> Matmul {
    Matmul { batch, a: MatrixView::transposed(m, s), ..Matmul::new(s, d, m) }
}

/// How an expert Dense kernel, [k, n] per expert, is stored on the device: in column panels of
/// `PANEL` columns when n is a multiple of it (each panel's k rows one contiguous run, so the
/// small-batch GEMMs stream the weights; `MatrixView::panels`), else row-major.
pub fn expert_kernel_view(k: usize, n: usize) -> MatrixView {
    if n.is_multiple_of(PANEL) {
        MatrixView::panels(k, n)
    } else {
        MatrixView::row_major(k, n)
    }
}

/// `experts` row-major [k, n] expert kernels laid out as `expert_kernel_view` says.
pub fn expert_kernel_layout(data: &[f32], experts: usize, k: usize, n: usize) -> Vec<f32> {
    if n.is_multiple_of(PANEL) {
        pack_panels(data, experts, k, n)
    } else {
        data.to_vec()
    }
}

/// Expert Dense₀: H [n, batch·p, h] = GELU(X̃_e · W0_e + b0_e) for e in `experts`; W0 and b0 hold just
/// those experts. Expert e's rows are its p slots of every example, read from the slot-major
/// [batch, n·p, d] layout with a grouped view; one GEMM batched over the experts (all of them, or as
/// many as one storage binding holds), W0 stored as `expert_kernel_view` says.
pub fn dense0(batch: usize, n: usize, p: usize, d: usize, h: usize, experts: Range<usize>, gelu: Gelu) -> Matmul {
    Matmul {
        batch: experts.len(),
        a: MatrixView::grouped(p, n * p * d, d, p * d).at(experts.start * p * d),
        b: expert_kernel_view(d, h),
        c: MatrixView::row_major(batch * p, h).at(experts.start * batch * p * h),
        bias_batch_stride: Some(h),
        activation: Activation::Gelu(gelu),
        ..Matmul::new(batch * p, h, d)
    }
}

/// Expert Dense₁: Ỹ [batch, n·p, d] = H_e · W1_e + b1_e for e in `experts`; W1 and b1 hold just those
/// experts, W1 stored as `expert_kernel_view` says.
pub fn dense1(batch: usize, n: usize, p: usize, d: usize, h: usize, experts: Range<usize>) -> Matmul {
    Matmul {
        batch: experts.len(),
        a: MatrixView::row_major(batch * p, h).at(experts.start * batch * p * h),
        b: expert_kernel_view(h, d),
        c: MatrixView::grouped(p, n * p * d, d, p * d).at(experts.start * p * d),
        bias_batch_stride: Some(d),
        ..Matmul::new(batch * p, d, h)
    }
}

/// Layer output Y [batch, m, d] = C [batch, m, s] · Ỹ [batch, s, d]; with `residual`, Y += C Ỹ.
pub fn combine(batch: usize, m: usize, s: usize, d: usize, residual: bool) -> Matmul {
    Matmul { batch, accumulate: residual, ..Matmul::new(m, d, s) }
}

/// A dense layer: Y [rows, n] = act(X [rows, k] · W [k, n] + b), or Y += … as a residual.
pub fn dense(rows: usize, k: usize, n: usize, activation: Activation, residual: bool) -> Matmul {
    Matmul { bias_batch_stride: Some(0), activation, accumulate: residual, ..Matmul::new(rows, n, k) }
}
