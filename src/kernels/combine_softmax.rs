//! `combine_softmax.wgsl`: C = softmax over all slots, per (example, token).

use super::{u32_of, Op};
use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};

pub const KERNEL: Kernel = Kernel { name: "combine_softmax", source: include_str!("../../shaders/combine_softmax.wgsl") };

/// Softmax of each of `rows` rows of `logits` [rows, slots] into `out`.
pub fn op(ctx: &GpuContext, logits: &wgpu::Buffer, out: &wgpu::Buffer, rows: usize, slots: usize) -> Result<Op> {
    Op::per_item(ctx, &KERNEL, &[u32_of(rows, "rows")?, u32_of(slots, "slots")?], &[logits, out], rows)
}
