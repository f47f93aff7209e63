//! `grad_norm.wgsl` + `grad_norm_finish.wgsl`: the global norm of all gradients, in one fixed order
//! (chunks of `CHUNK` values tensor by tensor, then the chunk sums in order), and the clipping factor
//! the optimiser applies (`adamw`).

use super::{kernel_params, u32_of, wgsl, Op};
use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};

pub mod reference;
#[cfg(test)]
mod tests;

pub const KERNEL: Kernel = Kernel::new::<GradNormParams>("grad_norm", wgsl!("grad_norm/grad_norm.wgsl"));
pub const FINISH_KERNEL: Kernel = Kernel::new::<GradNormFinishParams>("grad_norm_finish", wgsl!("grad_norm/grad_norm_finish.wgsl"));

/// Values per partial sum (`CHUNK` in grad_norm.wgsl).
pub const CHUNK: usize = 256;

kernel_params! {
    pub struct GradNormParams {
        count: u32,
        offset: u32,
    }
}

kernel_params! {
    pub struct GradNormFinishParams {
        partials: u32,
        max_norm: f32,
    }
}

/// How many partial sums a tensor of `count` values takes.
pub fn chunks(count: usize) -> usize {
    count.div_ceil(CHUNK)
}

/// partial[offset..offset + chunks(count)] = the chunks' sums of squares of `grad`.
pub fn op(ctx: &GpuContext, grad: &wgpu::Buffer, partial: &wgpu::Buffer, count: usize, offset: usize) -> Result<Op> {
    let params = GradNormParams { count: u32_of(count, "gradient values")?, offset: u32_of(offset, "partial-sum offset")? };
    Op::per_item(ctx, &KERNEL, &params, &[grad, partial], chunks(count))
}

/// hyper[4] = the clipping factor, hyper[5] = the norm, from the first `partials` partial sums.
pub fn finish_op(ctx: &GpuContext, partial: &wgpu::Buffer, hyper: &wgpu::Buffer, partials: usize, max_norm: f32) -> Result<Op> {
    let params = GradNormFinishParams { partials: u32_of(partials, "partial sums")?, max_norm };
    Op::per_item(ctx, &FINISH_KERNEL, &params, &[partial, hyper], 1)
}
