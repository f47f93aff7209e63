//! `combine_softmax_backward.wgsl`: the softmax over slots, backwards.

use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};
use crate::kernels::{kernel_params, u32_of, wgsl, Op};

pub const BACKWARD_KERNEL: Kernel =
    Kernel::new::<CombineSoftmaxBackwardParams>("combine_softmax_backward", wgsl!("combine_softmax/combine_softmax_backward.wgsl"));

kernel_params! {
    pub struct CombineSoftmaxBackwardParams {
        rows: u32,
        slots: u32,
        /// Bit 0: add into d logits.
        flags: u32,
    }
}

/// d logits [rows, slots] (+)= the softmax backward of C and dC (same layout).
pub fn backward_op(
    ctx: &GpuContext,
    combine: &wgpu::Buffer,
    d_combine: &wgpu::Buffer,
    d_logits: &wgpu::Buffer,
    rows: usize,
    slots: usize,
    accumulate: bool,
) -> Result<Op> {
    let params = CombineSoftmaxBackwardParams { rows: u32_of(rows, "rows")?, slots: u32_of(slots, "slots")?, flags: u32::from(accumulate) };
    Op::per_item(ctx, &BACKWARD_KERNEL, &params, &[combine, d_combine, d_logits], rows)
}
