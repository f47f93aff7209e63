//! `layer_norm.wgsl`: LayerNorm over the last axis with a packed [scale | bias] buffer.

use super::{u32_of, Op};
use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};

pub const KERNEL: Kernel = Kernel { name: "layer_norm", source: include_str!("../../shaders/layer_norm.wgsl") };

/// dst [rows, d] = LayerNorm(src) with `affine` = scale (d) then bias (d).
pub fn op(ctx: &GpuContext, src: &wgpu::Buffer, affine: &wgpu::Buffer, dst: &wgpu::Buffer, rows: usize, d: usize, eps: f32) -> Result<Op> {
    let params = [u32_of(rows, "rows")?, u32_of(d, "width")?, eps.to_bits()];
    Op::per_item(ctx, &KERNEL, &params, &[src, affine, dst], rows)
}
