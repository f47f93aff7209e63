//! `sparse_gather.wgsl`: the experts' input buffers [groups, n·cap, d] from the routed tokens.

use super::sparse_route::RouteShape;
use super::{u32_of, Op};
use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};

pub const KERNEL: Kernel = Kernel { name: "sparse_gather", source: include_str!("../../shaders/sparse_gather.wgsl") };

pub fn op(ctx: &GpuContext, s: &RouteShape, d: usize, slot_of: &wgpu::Buffer, x: &wgpu::Buffer, xs: &wgpu::Buffer) -> Result<Op> {
    let slots = s.groups * s.n * s.cap_full;
    let params = [
        u32_of(s.rows, "tokens")?,
        u32_of(s.n, "experts")?,
        u32_of(s.group_tokens, "group tokens")?,
        u32_of(s.cap_full, "capacity")?,
        u32_of(d, "d")?,
        u32_of(slots, "expert slots")?,
    ];
    Op::per_item(ctx, &KERNEL, &params, &[slot_of, x, xs], slots)
}
