//! `dispatch_softmax.wgsl`: D = softmax over tokens, per (example, slot).

use super::{u32_of, Op};
use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};

pub const KERNEL: Kernel = Kernel { name: "dispatch_softmax", source: include_str!("../../shaders/dispatch_softmax.wgsl") };

/// Softmax of `logits` [batch, tokens, slots] over tokens into `out` (same layout).
pub fn op(ctx: &GpuContext, logits: &wgpu::Buffer, out: &wgpu::Buffer, batch: usize, tokens: usize, slots: usize) -> Result<Op> {
    let items = batch * slots;
    let params = [u32_of(batch, "batch")?, u32_of(tokens, "tokens")?, u32_of(slots, "slots")?, u32_of(items, "batch·slots")?];
    Op::per_item(ctx, &KERNEL, &params, &[logits, out], items)
}
