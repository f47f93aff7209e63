//! `dispatch_softmax_backward.wgsl`: the softmax over tokens, backwards.

use super::DispatchSoftmaxParams;
use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};
use crate::kernels::{u32_of, wgsl, Op};

pub const BACKWARD_KERNEL: Kernel =
    Kernel::new::<DispatchSoftmaxParams>("dispatch_softmax_backward", wgsl!("dispatch_softmax/dispatch_softmax_backward.wgsl"));

/// d logits [batch, tokens, slots] from D and dD (same layout).
pub fn backward_op(
    ctx: &GpuContext,
    dispatch: &wgpu::Buffer,
    d_dispatch: &wgpu::Buffer,
    d_logits: &wgpu::Buffer,
    batch: usize,
    tokens: usize,
    slots: usize,
) -> Result<Op> {
    let items = batch * slots;
    let params = DispatchSoftmaxParams {
        batch: u32_of(batch, "batch")?,
        tokens: u32_of(tokens, "tokens")?,
        slots: u32_of(slots, "slots")?,
        items: u32_of(items, "batch·slots")?,
    };
    Op::per_item(ctx, &BACKWARD_KERNEL, &params, &[dispatch, d_dispatch, d_logits], items)
}
