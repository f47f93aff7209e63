//! `mean_pool.wgsl`: global average pooling over tokens.

use super::{kernel_params, u32_of, wgsl, Op};
use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};

pub mod reference;
#[cfg(test)]
mod tests;

pub const KERNEL: Kernel = Kernel::new::<MeanPoolParams>("mean_pool", wgsl!("mean_pool/mean_pool.wgsl"));

kernel_params! {
    pub struct MeanPoolParams {
        batch: u32,
        tokens: u32,
        d: u32,
    }
}

/// pooled [b, d] = mean over tokens of x [b, m, d].
pub fn op(ctx: &GpuContext, x: &wgpu::Buffer, pooled: &wgpu::Buffer, batch: usize, tokens: usize, d: usize) -> Result<Op> {
    let params = MeanPoolParams { batch: u32_of(batch, "batch")?, tokens: u32_of(tokens, "tokens")?, d: u32_of(d, "width")? };
    Op::per_item(ctx, &KERNEL, &params, &[x, pooled], batch * d)
}

pub mod backward;
pub mod backward_reference;
#[cfg(test)]
mod backward_tests;
