//! `rms_norm.wgsl`: soft-moe-pytorch's `RMSNorm`, v / max(‖v‖, 1e-12) · √len · γ, over strided
//! vectors (token rows, slot columns) with one learned γ of `len` values.

use super::{kernel_params, u32_of, wgsl, Op};
use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};

pub mod reference;
#[cfg(test)]
mod tests;

pub const KERNEL: Kernel = Kernel::new::<RmsNormParams>("rms_norm", wgsl!("rms_norm/rms_norm.wgsl"));

kernel_params! {
    pub struct RmsNormParams {
        count: u32,
        len: u32,
        vec_stride: u32,
        elem_stride: u32,
        mult: f32,
    }
}

/// RMSNorms `count` vectors of `len` elements from `src` into `dst` (same layout); `gamma` holds
/// `len` values, element k of every vector is scaled by `gamma[k]`.
#[allow(clippy::too_many_arguments)]
pub fn op(
    ctx: &GpuContext,
    src: &wgpu::Buffer,
    gamma: &wgpu::Buffer,
    dst: &wgpu::Buffer,
    count: usize,
    len: usize,
    vec_stride: usize,
    elem_stride: usize,
) -> Result<Op> {
    let params = RmsNormParams {
        count: u32_of(count, "vector count")?,
        len: u32_of(len, "vector length")?,
        vec_stride: u32_of(vec_stride, "vector stride")?,
        elem_stride: u32_of(elem_stride, "element stride")?,
        mult: reference::rms_mult(len) as f32,
    };
    Op::per_item(ctx, &KERNEL, &params, &[src, gamma, dst], count)
}

/// RMSNorms each of `rows` rows of a row-major rows×cols matrix (the tokens of X; γ has cols values).
pub fn rows_op(ctx: &GpuContext, src: &wgpu::Buffer, gamma: &wgpu::Buffer, dst: &wgpu::Buffer, rows: usize, cols: usize) -> Result<Op> {
    op(ctx, src, gamma, dst, rows, cols, cols, 1)
}

/// RMSNorms each of `cols` columns of a row-major rows×cols matrix (the slots of Φ [d, n·p]; γ has
/// rows values).
pub fn columns_op(ctx: &GpuContext, src: &wgpu::Buffer, gamma: &wgpu::Buffer, dst: &wgpu::Buffer, rows: usize, cols: usize) -> Result<Op> {
    op(ctx, src, gamma, dst, cols, rows, 1, cols)
}
