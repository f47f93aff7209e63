//! `dispatch_softmax.wgsl`: D = softmax over tokens, per (example, slot).

use super::{kernel_params, u32_of, wgsl, Op};
use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};

pub mod reference;
#[cfg(test)]
mod tests;

pub const KERNEL: Kernel = Kernel::new::<DispatchSoftmaxParams>("dispatch_softmax", wgsl!("dispatch_softmax/dispatch_softmax.wgsl"));

kernel_params! {
    pub struct DispatchSoftmaxParams {
        batch: u32,
        tokens: u32,
        slots: u32,
        /// batch · slots: one invocation each.
        items: u32,
    }
}

/// Softmax of `logits` [batch, tokens, slots] over tokens into `out` (same layout).
pub fn op(ctx: &GpuContext, logits: &wgpu::Buffer, out: &wgpu::Buffer, batch: usize, tokens: usize, slots: usize) -> Result<Op> {
    let items = batch * slots;
    let params = DispatchSoftmaxParams {
        batch: u32_of(batch, "batch")?,
        tokens: u32_of(tokens, "tokens")?,
        slots: u32_of(slots, "slots")?,
        items: u32_of(items, "batch·slots")?,
    };
    Op::per_item(ctx, &KERNEL, &params, &[logits, out], items)
}

pub mod backward;
pub mod backward_reference;
#[cfg(test)]
mod backward_tests;
