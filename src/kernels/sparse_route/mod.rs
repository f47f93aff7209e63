//! `sparse_route.wgsl`: each (token, expert) pair's slot in the expert's buffer (u32::MAX = none).

use super::{kernel_params, u32_of, wgsl, Op};
use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};
use crate::routing::Router;

pub mod reference;
#[cfg(test)]
pub(crate) mod tests;

pub const KERNEL: Kernel = Kernel::new::<SparseRouteParams>("sparse_route", wgsl!("sparse_route/sparse_route.wgsl"));

kernel_params! {
    pub struct SparseRouteParams {
        rows: u32,
        n: u32,
        group_tokens: u32,
        /// Choices per token; 0: Experts Choice.
        k: u32,
        cap_full: u32,
        cap_last: u32,
    }
}

/// The shape of one sparse routing: `rows` tokens in groups of `group_tokens` (the last may be
/// shorter), `n` experts, and each expert's capacity in a full and in the last group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteShape {
    pub rows: usize,
    pub n: usize,
    pub group_tokens: usize,
    pub groups: usize,
    pub cap_full: usize,
    pub cap_last: usize,
}

impl RouteShape {
    pub fn new(router: &Router, b: usize, m: usize, n: usize, group_images: usize) -> Self {
        let rows = b * m;
        let group_tokens = group_images.max(1) * m;
        let groups = rows.div_ceil(group_tokens.max(1));
        let last = rows - (groups.max(1) - 1) * group_tokens;
        RouteShape { rows, n, group_tokens, groups, cap_full: router.capacity(group_tokens, n), cap_last: router.capacity(last, n) }
    }
}

/// Slots from the gates [rows, n] into `slot_of` [rows, n] (u32).
pub fn op(ctx: &GpuContext, router: &Router, s: &RouteShape, gates: &wgpu::Buffer, slot_of: &wgpu::Buffer) -> Result<Op> {
    let params = SparseRouteParams {
        rows: u32_of(s.rows, "tokens")?,
        n: u32_of(s.n, "experts")?,
        group_tokens: u32_of(s.group_tokens, "group tokens")?,
        k: u32_of(router.k(), "router_k")?,
        cap_full: u32_of(s.cap_full, "capacity")?,
        cap_last: u32_of(s.cap_last, "capacity")?,
    };
    Op::per_item(ctx, &KERNEL, &params, &[gates, slot_of], s.rows * s.n)
}
