//! `attention.wgsl`: multi-head dot-product attention, self-attention from fused qkv rows or
//! attention pooling of a shared probe query, optionally with LayerNorm on queries and keys.

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
        queries: u32,
        tokens: u32,
        heads: u32,
        head_dim: u32,
        q_batch_stride: u32,
        q_row_stride: u32,
        kv_row_stride: u32,
        k_offset: u32,
        v_offset: u32,
        /// 1: LayerNorm each head's query and key (scales in the `qk_scale` binding).
        qk_norm: u32,
        eps: f32,
    }
}

/// LayerNorm on queries and keys (vmoe's `attention_qk_norm`): `scales` holds the query's head_dim
/// scales, then the key's; `eps` is the LayerNorm's.
#[derive(Clone, Copy)]
pub struct QkNorm<'a> {
    pub scales: &'a wgpu::Buffer,
    pub eps: f32,
}

/// Self-attention: out [b·m, heads·hd] = softmax(q kᵀ/√hd) v per (example, head), from qkv
/// [b·m, 3·heads·hd] (q | k | v, head-major).
#[allow(clippy::too_many_arguments)]
pub fn op(
    ctx: &GpuContext,
    qkv: &wgpu::Buffer,
    out: &wgpu::Buffer,
    batch: usize,
    tokens: usize,
    heads: usize,
    head_dim: usize,
    qk_norm: Option<QkNorm>,
) -> Result<Op> {
    let d = heads * head_dim;
    let layout =
        Layout { queries: tokens, q_batch_stride: tokens * 3 * d, q_row_stride: 3 * d, kv_row_stride: 3 * d, k_offset: d, v_offset: 2 * d };
    encode(ctx, qkv, qkv, out, batch, tokens, heads, head_dim, layout, qk_norm)
}

/// Attention pooling (vmoe's `MapHead`): out [b, heads·hd] = softmax(q kᵀ/√hd) v per (example,
/// head) for the one probe query `q` [heads·hd], the same for every example, over keys and values
/// `kv` [b·m, 2·heads·hd] (k | v, head-major).
#[allow(clippy::too_many_arguments)]
pub fn pool_op(
    ctx: &GpuContext,
    q: &wgpu::Buffer,
    kv: &wgpu::Buffer,
    out: &wgpu::Buffer,
    batch: usize,
    tokens: usize,
    heads: usize,
    head_dim: usize,
    qk_norm: Option<QkNorm>,
) -> Result<Op> {
    let d = heads * head_dim;
    let layout = Layout { queries: 1, q_batch_stride: 0, q_row_stride: 0, kv_row_stride: 2 * d, k_offset: 0, v_offset: d };
    encode(ctx, q, kv, out, batch, tokens, heads, head_dim, layout, qk_norm)
}

/// Where the queries, keys and values live.
struct Layout {
    queries: usize,
    q_batch_stride: usize,
    q_row_stride: usize,
    kv_row_stride: usize,
    k_offset: usize,
    v_offset: usize,
}

#[allow(clippy::too_many_arguments)]
fn encode(
    ctx: &GpuContext,
    q: &wgpu::Buffer,
    kv: &wgpu::Buffer,
    out: &wgpu::Buffer,
    batch: usize,
    tokens: usize,
    heads: usize,
    head_dim: usize,
    l: Layout,
    qk_norm: Option<QkNorm>,
) -> Result<Op> {
    let items = batch * heads * l.queries;
    u32_of(items, "attention rows")?;
    u32_of(batch * tokens * l.kv_row_stride, "attention keys and values")?;
    let params = AttentionParams {
        batch: u32_of(batch, "batch")?,
        queries: u32_of(l.queries, "queries")?,
        tokens: u32_of(tokens, "tokens")?,
        heads: u32_of(heads, "heads")?,
        head_dim: u32_of(head_dim, "head dimension")?,
        q_batch_stride: u32_of(l.q_batch_stride, "query batch stride")?,
        q_row_stride: u32_of(l.q_row_stride, "query row stride")?,
        kv_row_stride: u32_of(l.kv_row_stride, "key/value row stride")?,
        k_offset: u32_of(l.k_offset, "key offset")?,
        v_offset: u32_of(l.v_offset, "value offset")?,
        qk_norm: u32::from(qk_norm.is_some()),
        eps: qk_norm.map_or(0.0, |n| n.eps),
    };
    // Without qk-norm the scales' binding still needs a buffer; it is never read.
    let scales = qk_norm.map_or(q, |n| n.scales);
    Op::per_item(ctx, &KERNEL, &params, &[q, kv, scales, out], items)
}

pub mod backward;
pub mod backward_reference;
#[cfg(test)]
mod backward_tests;
