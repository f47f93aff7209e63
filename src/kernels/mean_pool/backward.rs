//! `mean_pool_backward.wgsl`: every token of an example gets its pooled gradient divided by m.

use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};
use crate::kernels::{kernel_params, u32_of, wgsl, Op};

pub const BACKWARD_KERNEL: Kernel = Kernel::new::<MeanPoolBackwardParams>("mean_pool_backward", wgsl!("mean_pool/mean_pool_backward.wgsl"));

kernel_params! {
    pub struct MeanPoolBackwardParams {
        batch: u32,
        tokens: u32,
        d: u32,
    }
}

/// dx [b, m, d] = d pooled [b, d] / m for every token.
pub fn backward_op(ctx: &GpuContext, d_pooled: &wgpu::Buffer, dx: &wgpu::Buffer, batch: usize, tokens: usize, d: usize) -> Result<Op> {
    let params = MeanPoolBackwardParams { batch: u32_of(batch, "batch")?, tokens: u32_of(tokens, "tokens")?, d: u32_of(d, "width")? };
    let items = batch * tokens * d;
    u32_of(items, "values")?;
    Op::per_item(ctx, &BACKWARD_KERNEL, &params, &[d_pooled, dx], items)
}
