//! `mean_pool.wgsl`: global average pooling over tokens.

use super::{u32_of, Op};
use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};

pub const KERNEL: Kernel = Kernel { name: "mean_pool", source: include_str!("../../shaders/mean_pool.wgsl") };

/// pooled [b, d] = mean over tokens of x [b, m, d].
pub fn op(ctx: &GpuContext, x: &wgpu::Buffer, pooled: &wgpu::Buffer, batch: usize, tokens: usize, d: usize) -> Result<Op> {
    let params = [u32_of(batch, "batch")?, u32_of(tokens, "tokens")?, u32_of(d, "width")?];
    Op::per_item(ctx, &KERNEL, &params, &[x, pooled], batch * d)
}
