//! `router_softmax.wgsl`: D and C from the router logits in one dispatch, one workgroup per example,
//! with its row reductions in subgroup operations where the device has them
//! (`router_rows_subgroup.wgsl`) and in workgroup memory everywhere else (`router_rows_shared.wgsl`).
//! `dispatch_softmax.wgsl` + `combine_softmax.wgsl` stay as the straightforward baseline and the
//! fallback for more slots than the fused kernel holds. For small layers at small batch,
//! `router_logits.wgsl` also computes the logits in the same dispatch (`logits_op`), each of an
//! example's workgroups those it reads. Both share the softmaxes of `router_softmaxes.wgsl`.

use super::{kernel_params, u32_of, wgsl, Op};
use crate::error::{Error, Result};
use crate::gpu::{GpuContext, Kernel};

pub mod reference;
#[cfg(test)]
mod tests;

pub const SUBGROUP_KERNEL: Kernel = Kernel::new::<RouterSoftmaxParams>(
    "router_softmax_subgroup",
    wgsl!("router_softmax/router_rows_subgroup.wgsl", "router_softmax/router_softmaxes.wgsl", "router_softmax/router_softmax.wgsl"),
);

pub const SHARED_KERNEL: Kernel = Kernel::new::<RouterSoftmaxParams>(
    "router_softmax_shared",
    wgsl!("router_softmax/router_rows_shared.wgsl", "router_softmax/router_softmaxes.wgsl", "router_softmax/router_softmax.wgsl"),
);

/// The whole router (logits and both softmaxes) in one dispatch (`router_logits.wgsl`), with the
/// subgroup or the workgroup-memory row reduction.
pub const LOGITS_SUBGROUP_KERNEL: Kernel = Kernel::new::<RouterLogitsParams>(
    "router_logits_subgroup",
    wgsl!("router_softmax/router_rows_subgroup.wgsl", "router_softmax/router_softmaxes.wgsl", "router_softmax/router_logits.wgsl"),
);

pub const LOGITS_SHARED_KERNEL: Kernel = Kernel::new::<RouterLogitsParams>(
    "router_logits_shared",
    wgsl!("router_softmax/router_rows_shared.wgsl", "router_softmax/router_softmaxes.wgsl", "router_softmax/router_logits.wgsl"),
);

kernel_params! {
    pub struct RouterLogitsParams {
        batch: u32,
        tokens: u32,
        slots: u32,
        row_lanes: u32,
        /// Workgroups per example (`logits_parts`), each with its own copy of the logits it reads.
        parts: u32,
        d: u32,
        /// 1: the tokens' L2 normalisation fused (as the logits GEMM fuses it).
        normalize: u32,
        alpha: f32,
    }
}

/// Most multiply-adds of one example's logits (tokens · slots · d) the one-dispatch router takes:
/// its parts compute up to twice the logits between them (each the columns and the rows it reads),
/// which pays only while the launch it saves costs more.
pub const LOGITS_MAX_FMAS: usize = 1 << 17;

/// Most examples the one-dispatch router takes: its per-logit dot products load twice per
/// multiply-add, which the logits GEMM's register blocking beats once the batch gives it rows.
pub const LOGITS_MAX_BATCH: usize = 4;

/// Whether the one-dispatch router takes `batch` examples of `tokens` tokens, `slots` slots (a multiple
/// of 4: Φ̂ is read as vec4), width d.
pub fn logits_fit(batch: usize, tokens: usize, slots: usize, d: usize) -> bool {
    fits(slots)
        && slots.is_multiple_of(4)
        && (1..=LOGITS_MAX_BATCH).contains(&batch)
        && tokens >= 1
        && d >= 1
        && tokens * slots * d <= LOGITS_MAX_FMAS
}

/// Workgroups per example of the one-dispatch router on an adapter of type `device`. Each part
/// computes about 2/parts of the example's logits (its slots' columns and its tokens' rows) and
/// 1/parts of the softmaxes, so a GPU at small batch gets as many parts as `parts_for` spreads the
/// softmaxes over instead of one busy core. A CPU adapter gets one: on lavapipe two parts took
/// 1.1–1.9× the time of one at the demo's router (bench router rows), as extra workgroups of these
/// small kernels cost it more than the second thread gains.
pub fn logits_parts(batch: usize, tokens: usize, device: wgpu::DeviceType) -> usize {
    if device == wgpu::DeviceType::Cpu {
        1
    } else {
        parts_for(batch, tokens, device)
    }
}

/// The router in one dispatch: L = alpha · X̂ Φ̂ from `x` [batch, tokens, d] and `mu` [d, slots]
/// (X̂ = X / ‖X‖ row by row when `normalize`), then D and C from it, bit for bit the logits GEMM
/// (`layers::stages::logits`, with its fused normalisation) followed by `op`. Each of the `parts`
/// workgroups per example keeps the logits it computes in its own copy: `logits` holds `parts`
/// copies of [batch, tokens, slots].
#[allow(clippy::too_many_arguments)]
pub fn logits_op(
    ctx: &GpuContext,
    x: &wgpu::Buffer,
    mu: &wgpu::Buffer,
    logits: &wgpu::Buffer,
    dispatch: &wgpu::Buffer,
    combine: &wgpu::Buffer,
    (batch, tokens, slots, d): (usize, usize, usize, usize),
    parts: usize,
    normalize: bool,
    alpha: f32,
) -> Result<Op> {
    if !logits_fit(batch, tokens, slots, d) || !(1..=tokens).contains(&parts) {
        return Err(Error::Internal(format!(
            "the one-dispatch router takes 1..={LOGITS_MAX_BATCH} examples, slots a multiple of 4, tokens·slots·d ≤ {LOGITS_MAX_FMAS} and 1..=tokens parts, not {batch} × {tokens}·{slots}·{d} in {parts} parts"
        )));
    }
    let rows = batch * tokens;
    for (name, buf, len) in [
        ("logits", logits, parts * rows * slots),
        ("dispatch", dispatch, rows * slots),
        ("combine", combine, rows * slots),
        ("x", x, rows * d),
        ("Router/mu", mu, d * slots),
    ] {
        if buf.size() < 4 * len as u64 {
            return Err(Error::Internal(format!(
                "the one-dispatch router: {name} needs {} bytes, its buffer holds {}",
                4 * len,
                buf.size()
            )));
        }
    }
    let reduction = RowReduction::best(ctx);
    let kernel = match reduction {
        RowReduction::Subgroup => &LOGITS_SUBGROUP_KERNEL,
        RowReduction::Shared => &LOGITS_SHARED_KERNEL,
    };
    let params = RouterLogitsParams {
        batch: batch as u32,
        tokens: tokens as u32,
        slots: slots as u32,
        row_lanes: row_lanes(slots) as u32,
        parts: parts as u32,
        d: d as u32,
        normalize: u32::from(normalize),
        alpha,
    };
    Op::new(ctx, kernel, &params, &[logits, dispatch, combine, x, mu], (batch * parts) as u64)
}

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
/// spread out at small batch on a GPU (each part takes a run of slots and a run of tokens), one
/// per example once the batch alone fills the device; never more than there are tokens. A GPU gets
/// some 32 workgroups in all, enough to occupy many cores with a few rows each. A CPU adapter gets
/// one per example: on lavapipe four took 1.3–2× the time of one at the demo's router and the same
/// at ViT-S's (bench router rows), extra workgroups costing it more than its few threads gain.
pub fn parts_for(batch: usize, tokens: usize, device: wgpu::DeviceType) -> usize {
    let target: usize = if device == wgpu::DeviceType::Cpu { 1 } else { 32 };
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
