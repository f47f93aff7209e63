//! `layer_norm.wgsl`: LayerNorm over the last axis with a packed [scale | bias] buffer.

use super::{kernel_params, u32_of, wgsl, Op};
use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};

pub mod reference;
#[cfg(test)]
mod tests;

pub const KERNEL: Kernel =
    Kernel::new::<LayerNormParams>("layer_norm", wgsl!("layer_norm/layer_norm_stats.wgsl", "layer_norm/layer_norm.wgsl"));

kernel_params! {
    pub struct LayerNormParams {
        rows: u32,
        d: u32,
        eps: f32,
    }
}

/// dst [rows, d] = LayerNorm(src) with `affine` = scale (d) then bias (d).
pub fn op(ctx: &GpuContext, src: &wgpu::Buffer, affine: &wgpu::Buffer, dst: &wgpu::Buffer, rows: usize, d: usize, eps: f32) -> Result<Op> {
    let params = LayerNormParams { rows: u32_of(rows, "rows")?, d: u32_of(d, "width")?, eps };
    Op::per_item(ctx, &KERNEL, &params, &[src, affine, dst], rows)
}

pub mod backward;
pub mod backward_reference;
#[cfg(test)]
mod backward_tests;
