//! `router_softmax.wgsl`: D and C from the router logits in one dispatch, one workgroup per example,
//! with its row reductions in subgroup operations where the device has them
//! (`router_rows_subgroup.wgsl`) and in workgroup memory everywhere else (`router_rows_shared.wgsl`).
//! `dispatch_softmax.wgsl` + `combine_softmax.wgsl` stay as the straightforward baseline and the
//! fallback for more slots than the fused kernel holds.

use super::{kernel_params, u32_of, wgsl, Op};
use crate::error::{Error, Result};
use crate::gpu::{GpuContext, Kernel};

pub mod reference;
#[cfg(test)]
mod tests;

pub const SUBGROUP_KERNEL: Kernel = Kernel::new::<RouterSoftmaxParams>(
    "router_softmax_subgroup",
    wgsl!("router_softmax/router_rows_subgroup.wgsl", "router_softmax/router_softmax.wgsl"),
);

pub const SHARED_KERNEL: Kernel = Kernel::new::<RouterSoftmaxParams>(
    "router_softmax_shared",
    wgsl!("router_softmax/router_rows_shared.wgsl", "router_softmax/router_softmax.wgsl"),
);

kernel_params! {
    pub struct RouterSoftmaxParams {
        batch: u32,
        tokens: u32,
        slots: u32,
        /// Invocations per row in router_rows_shared.wgsl (unused with subgroups): `row_lanes(slots)`.
        row_lanes: u32,
        /// Workgroups per example: `parts_for(batch, tokens)`.
        parts: u32,
    }
}

/// The most slots (n·p) whose column statistics the fused kernel keeps in workgroup memory.
pub const MAX_SLOTS: usize = 1024;

/// How the fused kernel reduces a token's row of logits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowReduction {
    /// `subgroupMax` / `subgroupAdd`: one subgroup per row (needs the `subgroups` feature).
    Subgroup,
    /// Halving in workgroup memory, `row_lanes(slots)` invocations per row: runs on every device.
    Shared,
}

impl RowReduction {
    /// The fastest reduction `ctx`'s device supports.
    pub fn best(ctx: &GpuContext) -> Self {
        if ctx.features.contains(wgpu::Features::SUBGROUP) {
            RowReduction::Subgroup
        } else {
            RowReduction::Shared
        }
    }

    fn kernel(self) -> &'static Kernel {
        match self {
            RowReduction::Subgroup => &SUBGROUP_KERNEL,
            RowReduction::Shared => &SHARED_KERNEL,
        }
    }
}

/// Invocations per row for the workgroup-memory reduction: about one per 8 slots, a power of two
/// from 1 to 64 (the barriers per row grow with its log).
pub fn row_lanes(slots: usize) -> usize {
    slots.div_ceil(8).next_power_of_two().min(64)
}

/// Workgroups per example for `batch` examples of `tokens` tokens on an adapter of type `device`:
/// spread out at small batch (each takes a run of tokens and some 64-slot column blocks), one per
/// example once the batch alone fills the device; never more than there are tokens. A GPU gets some
/// 32 workgroups in all, enough to occupy many cores with a few rows each; a CPU adapter, which runs
/// a workgroup per thread and pays for every extra one, 4.
pub fn parts_for(batch: usize, tokens: usize, device: wgpu::DeviceType) -> usize {
    let target: usize = if device == wgpu::DeviceType::Cpu { 4 } else { 32 };
    target.div_ceil(batch.max(1)).clamp(1, tokens.max(1))
}

/// Whether the fused kernel can take `slots` slots.
pub fn fits(slots: usize) -> bool {
    slots <= MAX_SLOTS
}

/// D and C [batch, tokens, slots] from `logits` (same layout), with the device's best reduction.
pub fn op(
    ctx: &GpuContext,
    logits: &wgpu::Buffer,
    dispatch: &wgpu::Buffer,
    combine: &wgpu::Buffer,
    batch: usize,
    tokens: usize,
    slots: usize,
) -> Result<Op> {
    let parts = parts_for(batch, tokens, ctx.kernels_for());
    op_with(RowReduction::best(ctx), ctx, logits, dispatch, combine, batch, tokens, slots, parts)
}

/// As `op`, with the reduction and the workgroups per example chosen by the caller (tests and
/// benchmarks compare them).
#[allow(clippy::too_many_arguments)]
pub fn op_with(
    reduction: RowReduction,
    ctx: &GpuContext,
    logits: &wgpu::Buffer,
    dispatch: &wgpu::Buffer,
    combine: &wgpu::Buffer,
    batch: usize,
    tokens: usize,
    slots: usize,
    parts: usize,
) -> Result<Op> {
    if !fits(slots) || tokens == 0 || parts == 0 {
        return Err(Error::Internal(format!(
            "the fused router softmax takes 1..={MAX_SLOTS} slots and at least one token, not {slots} slots and {tokens} tokens"
        )));
    }
    if reduction == RowReduction::Subgroup && !ctx.features.contains(wgpu::Features::SUBGROUP) {
        return Err(Error::MissingFeature { feature: "subgroups", needed_for: "subgroup reductions", adapter: ctx.info.name.clone() });
    }
    let params = RouterSoftmaxParams {
        batch: u32_of(batch, "batch")?,
        tokens: u32_of(tokens, "tokens")?,
        slots: u32_of(slots, "slots")?,
        row_lanes: row_lanes(slots) as u32,
        parts: u32_of(parts, "parts")?,
    };
    u32_of(batch * tokens * slots, "batch·tokens·slots")?;
    Op::new(ctx, reduction.kernel(), &params, &[logits, dispatch, combine], (batch * parts) as u64)
}
