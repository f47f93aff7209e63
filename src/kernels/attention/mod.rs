//! `attention.wgsl`: multi-head self-attention from fused qkv rows.

use super::{kernel_params, u32_of, wgsl, Op};
use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};

pub mod reference;
#[cfg(test)]
mod tests;

pub const KERNEL: Kernel = Kernel::new::<AttentionParams>("attention", wgsl!("attention/attention.wgsl"));

kernel_params! {
    pub struct AttentionParams {
        batch: u32,
        tokens: u32,
        heads: u32,
        head_dim: u32,
    }
}

/// out [b·m, heads·hd] = softmax(q kᵀ/√hd) v per (example, head), from qkv [b·m, 3·heads·hd].
pub fn op(
    ctx: &GpuContext,
    qkv: &wgpu::Buffer,
    out: &wgpu::Buffer,
    batch: usize,
    tokens: usize,
    heads: usize,
    head_dim: usize,
) -> Result<Op> {
    let items = batch * heads * tokens;
    u32_of(items, "attention rows")?;
    let params = AttentionParams {
        batch: u32_of(batch, "batch")?,
        tokens: u32_of(tokens, "tokens")?,
        heads: u32_of(heads, "heads")?,
        head_dim: u32_of(head_dim, "head dimension")?,
    };
    Op::per_item(ctx, &KERNEL, &params, &[qkv, out], items)
}
