//! `sparse_combine.wgsl`: y = the gate-weighted sum of each token's expert outputs (or y += it).

use super::sparse_route::RouteShape;
use super::{kernel_params, u32_of, wgsl, Op};
use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};

pub mod reference;
#[cfg(test)]
mod tests;

pub const KERNEL: Kernel = Kernel::new::<SparseCombineParams>("sparse_combine", wgsl!("sparse_combine/sparse_combine.wgsl"));

kernel_params! {
    pub struct SparseCombineParams {
        rows: u32,
        n: u32,
        group_tokens: u32,
        cap: u32,
        d: u32,
        /// 1: add into y.
        residual: u32,
    }
}

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
    let params = SparseCombineParams {
        rows: u32_of(s.rows, "tokens")?,
        n: u32_of(s.n, "experts")?,
        group_tokens: u32_of(s.group_tokens, "group tokens")?,
        cap: u32_of(s.cap_full, "capacity")?,
        d: u32_of(d, "d")?,
        residual: u32::from(residual),
    };
    Op::per_item(ctx, &KERNEL, &params, &[gates, slot_of, ys, y], s.rows * d)
}
