//! `slot_experts.wgsl`: X̃ = DᵀX and both expert Dense layers of a Soft MoE layer in one dispatch,
//! one workgroup per expert, for layers whose experts are small enough that launching three GEMMs
//! costs more than the work (the shipped ViTs at small batch). Bit for bit the three-GEMM path
//! (`layers::stages::{slot_inputs, dense0, dense1}`), so choosing it by batch keeps batch invariance.

use super::gemm::MatrixView;
use super::{kernel_params, u32_of, wgsl, Op};
use crate::config::Gelu;
use crate::error::{Error, Result};
use crate::gpu::{GpuContext, Kernel};
use crate::layers::stages::expert_kernel_view;

#[cfg(test)]
mod tests;

/// The kernel with `STAGE` floats of workgroup memory for X̃ and H.
macro_rules! slot_experts_kernel {
    ($name:literal, $stage:literal) => {
        Kernel::new::<SlotExpertsParams>(
            $name,
            concat!(wgsl!("gelu/gelu_functions.wgsl", "slot_experts/slot_experts.wgsl"), "\nconst STAGE: u32 = ", $stage, "u;\n"),
        )
    };
}

/// The kernels by workgroup memory (`STAGES` floats each): the least that holds the rows is chosen.
pub const KERNELS: [Kernel; 2] = [slot_experts_kernel!("slot_experts_4k", 1024), slot_experts_kernel!("slot_experts_16k", 4096)];

/// Floats of workgroup memory of each of `KERNELS`.
pub const STAGES: [usize; 2] = [1024, 4096];

kernel_params! {
    pub struct SlotExpertsParams {
        batch: u32,
        tokens: u32,
        d: u32,
        n: u32,
        p: u32,
        h: u32,
        /// 0 none, 1 GELU tanh, 2 GELU erf.
        act: u32,
        w0_rs: u32,
        w0_cg: u32,
        w0_cgs: u32,
        w1_rs: u32,
        w1_cg: u32,
        w1_cgs: u32,
    }
}

/// Floats of workgroup memory for X̃ and H in the largest kernel (16 KiB).
pub const STAGE_FLOATS: usize = STAGES[1];

/// Most rows (batch · p) per expert the fused kernel takes: beyond a few, the GEMMs' register
/// blocking pays for their extra dispatches.
pub const MAX_ROWS: usize = 8;

/// Most elements of one expert Dense kernel (d · h) the fused kernel takes: one workgroup streams
/// each expert's weights, which keeps a GPU busy only while the weights are small.
pub const MAX_KERNEL_ELEMENTS: usize = 1 << 15;

/// The shape of one fused dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotExpertsShape {
    pub batch: usize,
    pub tokens: usize,
    pub d: usize,
    pub n: usize,
    pub p: usize,
    pub h: usize,
    pub gelu: Gelu,
}

impl SlotExpertsShape {
    /// Whether the fused kernel takes this shape: d and h multiples of 4 (vec4 reads), X̃ and H of
    /// all rows in workgroup memory, few rows, small experts.
    pub fn fits(&self) -> bool {
        let rows = self.batch * self.p;
        rows > 0
            && self.tokens > 0
            && self.d.is_multiple_of(4)
            && self.h.is_multiple_of(4)
            && rows <= MAX_ROWS
            && rows * (self.d + self.h) <= STAGE_FLOATS
            && self.d * self.h <= MAX_KERNEL_ELEMENTS
    }
}

/// Ỹ [batch, n·p, d] from D [batch, m, n·p] and X [batch, m, d] through the experts' W0 [n, d, h],
/// b0 [n, h], W1 [n, h, d], b1 [n, d] (kernels stored as `expert_kernel_view` says).
#[allow(clippy::too_many_arguments)]
pub fn op(
    ctx: &GpuContext,
    shape: SlotExpertsShape,
    dispatch: &wgpu::Buffer,
    x: &wgpu::Buffer,
    w0: &wgpu::Buffer,
    b0: &wgpu::Buffer,
    w1: &wgpu::Buffer,
    b1: &wgpu::Buffer,
    slots_out: &wgpu::Buffer,
) -> Result<Op> {
    if !shape.fits() {
        return Err(Error::Internal(format!("the fused slot experts do not take {shape:?}")));
    }
    let SlotExpertsShape { batch, tokens, d, n, p, h, gelu } = shape;
    let s = n * p;
    let needs = [
        ("dispatch", dispatch, batch * tokens * s),
        ("x", x, batch * tokens * d),
        ("Mlp/Dense_0/kernel", w0, n * d * h),
        ("Mlp/Dense_0/bias", b0, n * h),
        ("Mlp/Dense_1/kernel", w1, n * h * d),
        ("Mlp/Dense_1/bias", b1, n * d),
        ("slot outputs", slots_out, batch * s * d),
    ];
    if let Some((name, buf, len)) = needs.iter().find(|(_, buf, len)| buf.size() < 4 * *len as u64) {
        return Err(Error::Internal(format!("slot experts {shape:?}: {name} needs {} bytes, its buffer holds {}", 4 * len, buf.size())));
    }
    let group = |v: &MatrixView| if v.col_group > u32::MAX as usize { u32::MAX } else { v.col_group as u32 };
    let (v0, v1) = (expert_kernel_view(d, h), expert_kernel_view(h, d));
    let params = SlotExpertsParams {
        batch: u32_of(batch, "batch")?,
        tokens: u32_of(tokens, "tokens")?,
        d: u32_of(d, "d")?,
        n: u32_of(n, "experts")?,
        p: u32_of(p, "slots per expert")?,
        h: u32_of(h, "h")?,
        act: match gelu {
            Gelu::Tanh => 1,
            Gelu::Erf => 2,
        },
        w0_rs: u32_of(v0.row_stride, "W0 row stride")?,
        w0_cg: group(&v0),
        w0_cgs: u32_of(v0.col_group_stride, "W0 panel stride")?,
        w1_rs: u32_of(v1.row_stride, "W1 row stride")?,
        w1_cg: group(&v1),
        w1_cgs: u32_of(v1.col_group_stride, "W1 panel stride")?,
    };
    u32_of(batch * tokens * s.max(d), "batch·tokens·slots")?;
    let need = batch * p * (d + h);
    let kernel = STAGES.iter().position(|&f| need <= f).map_or(&KERNELS[1], |i| &KERNELS[i]);
    let buffers = [(1, dispatch), (2, x), (3, w0), (4, b0), (5, w1), (6, b1), (7, slots_out)];
    Op::specialized(ctx, kernel, &[("ACT", params.act)], &params, &buffers, n as u64)
}
