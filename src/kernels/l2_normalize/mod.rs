//! `l2_normalize.wgsl`: v · 1/sqrt(‖v‖² + 1e-6) over strided vectors (token rows, slot columns).

use super::{kernel_params, u32_of, wgsl, Op};
use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};

pub mod reference;
#[cfg(test)]
mod tests;

pub const KERNEL: Kernel = Kernel::new::<L2NormalizeParams>("l2_normalize", wgsl!("l2_normalize/l2_normalize.wgsl"));

kernel_params! {
    pub struct L2NormalizeParams {
        count: u32,
        len: u32,
        vec_stride: u32,
        elem_stride: u32,
    }
}

/// Normalises `count` vectors of `len` elements from `src` into `dst` (same layout).
pub fn op(
    ctx: &GpuContext,
    src: &wgpu::Buffer,
    dst: &wgpu::Buffer,
    count: usize,
    len: usize,
    vec_stride: usize,
    elem_stride: usize,
) -> Result<Op> {
    let params = L2NormalizeParams {
        count: u32_of(count, "vector count")?,
        len: u32_of(len, "vector length")?,
        vec_stride: u32_of(vec_stride, "vector stride")?,
        elem_stride: u32_of(elem_stride, "element stride")?,
    };
    Op::per_item(ctx, &KERNEL, &params, &[src, dst], count)
}

/// Normalises each of `rows` rows of a row-major rows×cols matrix (the tokens of X).
pub fn rows_op(ctx: &GpuContext, src: &wgpu::Buffer, dst: &wgpu::Buffer, rows: usize, cols: usize) -> Result<Op> {
    op(ctx, src, dst, rows, cols, cols, 1)
}

/// Normalises each of `cols` columns of a row-major rows×cols matrix (the slots of Φ).
pub fn columns_op(ctx: &GpuContext, src: &wgpu::Buffer, dst: &wgpu::Buffer, rows: usize, cols: usize) -> Result<Op> {
    op(ctx, src, dst, cols, rows, 1, cols)
}

pub mod backward;
pub mod backward_reference;
#[cfg(test)]
mod backward_tests;
