//! `sparse_gather.wgsl`: the experts' input buffers [groups, n·cap, d] from the routed tokens.

use super::sparse_route::RouteShape;
use super::{kernel_params, u32_of, wgsl, Op};
use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};

pub mod reference;
#[cfg(test)]
mod tests;

pub const KERNEL: Kernel = Kernel::new::<SparseGatherParams>("sparse_gather", wgsl!("sparse_gather/sparse_gather.wgsl"));

kernel_params! {
    pub struct SparseGatherParams {
        rows: u32,
        n: u32,
        group_tokens: u32,
        cap: u32,
        d: u32,
        /// groups · n · cap: one invocation each.
        slots: u32,
    }
}

pub fn op(ctx: &GpuContext, s: &RouteShape, d: usize, slot_of: &wgpu::Buffer, x: &wgpu::Buffer, xs: &wgpu::Buffer) -> Result<Op> {
    let slots = s.groups * s.n * s.cap_full;
    let params = SparseGatherParams {
        rows: u32_of(s.rows, "tokens")?,
        n: u32_of(s.n, "experts")?,
        group_tokens: u32_of(s.group_tokens, "group tokens")?,
        cap: u32_of(s.cap_full, "capacity")?,
        d: u32_of(d, "d")?,
        slots: u32_of(slots, "expert slots")?,
    };
    Op::per_item(ctx, &KERNEL, &params, &[slot_of, x, xs], slots)
}
