//! `attention.wgsl`: multi-head self-attention from fused qkv rows.

use super::{u32_of, Op};
use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};

pub const KERNEL: Kernel = Kernel { name: "attention", source: include_str!("../../shaders/attention.wgsl") };

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
    let params = [u32_of(batch, "batch")?, u32_of(tokens, "tokens")?, u32_of(heads, "heads")?, u32_of(head_dim, "head dimension")?];
    Op::per_item(ctx, &KERNEL, &params, &[qkv, out], items)
}
