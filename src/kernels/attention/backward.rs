//! The backward of `attention.wgsl` in two kernels: `attention_backward_query.wgsl` (dq, and each
//! query row's softmax statistics) then `attention_backward_key.wgsl` (dk and dv), each one
//! invocation per (example, head, token) with the other tokens in ascending order.

use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};
use crate::kernels::{kernel_params, u32_of, wgsl, Op};

kernel_params! {
    /// The backward kernels' own uniform (the forward's carries layouts and the q/k norm they do not read).
    pub struct AttentionBackwardParams {
        batch: u32,
        tokens: u32,
        heads: u32,
        head_dim: u32,
    }
}

pub const QUERY_KERNEL: Kernel =
    Kernel::new::<AttentionBackwardParams>("attention_backward_query", wgsl!("attention/attention_backward_query.wgsl"));
pub const KEY_KERNEL: Kernel =
    Kernel::new::<AttentionBackwardParams>("attention_backward_key", wgsl!("attention/attention_backward_key.wgsl"));

/// Values of the statistics buffer per (example, head, query).
pub const STATS_PER_ROW: usize = 4;

/// The two dispatches writing d qkv [b·m, 3d] from qkv, the forward's output `out` [b·m, d] and
/// d out; `stats` holds `STATS_PER_ROW` values per (example, head, query) between them.
#[allow(clippy::too_many_arguments)]
pub fn backward_ops(
    ctx: &GpuContext,
    qkv: &wgpu::Buffer,
    out: &wgpu::Buffer,
    d_out: &wgpu::Buffer,
    d_qkv: &wgpu::Buffer,
    stats: &wgpu::Buffer,
    batch: usize,
    tokens: usize,
    heads: usize,
    head_dim: usize,
) -> Result<[Op; 2]> {
    let items = batch * heads * tokens;
    u32_of(items * STATS_PER_ROW, "attention rows")?;
    let params = AttentionBackwardParams {
        batch: u32_of(batch, "batch")?,
        tokens: u32_of(tokens, "tokens")?,
        heads: u32_of(heads, "heads")?,
        head_dim: u32_of(head_dim, "head dimension")?,
    };
    Ok([
        Op::per_item(ctx, &QUERY_KERNEL, &params, &[qkv, out, d_out, d_qkv, stats], items)?,
        Op::per_item(ctx, &KEY_KERNEL, &params, &[qkv, d_out, stats, d_qkv], items)?,
    ])
}
