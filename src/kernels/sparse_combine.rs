//! `sparse_combine.wgsl`: y = the gate-weighted sum of each token's expert outputs (or y += it).

use super::sparse_route::RouteShape;
use super::{u32_of, Op};
use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};

pub const KERNEL: Kernel = Kernel { name: "sparse_combine", source: include_str!("../../shaders/sparse_combine.wgsl") };

#[allow(clippy::too_many_arguments)]
pub fn op(
    ctx: &GpuContext,
    s: &RouteShape,
    d: usize,
    gates: &wgpu::Buffer,
    slot_of: &wgpu::Buffer,
    ys: &wgpu::Buffer,
    y: &wgpu::Buffer,
    residual: bool,
) -> Result<Op> {
    let params = [
        u32_of(s.rows, "tokens")?,
        u32_of(s.n, "experts")?,
        u32_of(s.group_tokens, "group tokens")?,
        u32_of(s.cap_full, "capacity")?,
        u32_of(d, "d")?,
        u32::from(residual),
    ];
    Op::per_item(ctx, &KERNEL, &params, &[gates, slot_of, ys, y], s.rows * d)
}
