//! `l2_normalize_backward.wgsl`: the L2 normalisation of token rows (or slot columns), backwards.

use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};
use crate::kernels::{kernel_params, u32_of, wgsl, Op};

pub const BACKWARD_KERNEL: Kernel =
    Kernel::new::<L2NormalizeBackwardParams>("l2_normalize_backward", wgsl!("l2_normalize/l2_normalize_backward.wgsl"));

kernel_params! {
    pub struct L2NormalizeBackwardParams {
        count: u32,
        len: u32,
        vec_stride: u32,
        elem_stride: u32,
        /// Bit 0: add into dx.
        flags: u32,
    }
}

/// dx (+)= the normalisation's backward of dy, for `count` vectors of `len` values (strided as in
/// `l2_normalize::op`), x the forward's input.
#[allow(clippy::too_many_arguments)]
pub fn backward_op(
    ctx: &GpuContext,
    x: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    dx: &wgpu::Buffer,
    count: usize,
    len: usize,
    vec_stride: usize,
    elem_stride: usize,
    accumulate: bool,
) -> Result<Op> {
    let params = L2NormalizeBackwardParams {
        count: u32_of(count, "vector count")?,
        len: u32_of(len, "vector length")?,
        vec_stride: u32_of(vec_stride, "vector stride")?,
        elem_stride: u32_of(elem_stride, "element stride")?,
        flags: u32::from(accumulate),
    };
    Op::per_item(ctx, &BACKWARD_KERNEL, &params, &[x, dy, dx], count)
}

/// As `backward_op` over the rows of a row-major rows×cols matrix (the tokens of X).
pub fn rows_backward_op(
    ctx: &GpuContext,
    x: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    dx: &wgpu::Buffer,
    rows: usize,
    cols: usize,
    accumulate: bool,
) -> Result<Op> {
    backward_op(ctx, x, dy, dx, rows, cols, cols, 1, accumulate)
}
