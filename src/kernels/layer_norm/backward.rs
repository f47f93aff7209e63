//! `layer_norm_backward.wgsl` (the input's gradient, per row) and `layer_norm_param_grad.wgsl`
//! (scale's and bias's, per column).

use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};
use crate::kernels::{kernel_params, u32_of, wgsl, Op};

pub const BACKWARD_KERNEL: Kernel = Kernel::new::<LayerNormBackwardParams>(
    "layer_norm_backward",
    wgsl!("layer_norm/layer_norm_stats.wgsl", "layer_norm/layer_norm_backward.wgsl"),
);
pub const PARAM_GRAD_KERNEL: Kernel =
    Kernel::new::<LayerNormParamGradParams>("layer_norm_param_grad", wgsl!("layer_norm/layer_norm_param_grad.wgsl"));

kernel_params! {
    pub struct LayerNormBackwardParams {
        rows: u32,
        d: u32,
        eps: f32,
        /// Bit 0: add into dx.
        flags: u32,
    }
}

kernel_params! {
    pub struct LayerNormParamGradParams {
        rows: u32,
        d: u32,
    }
}

/// dx [rows, d] (+)= d LayerNorm(x)ᵀ dy with `affine` = [scale | bias]; `stats` [rows, 2] receives each
/// row's mean and 1/σ for `param_grad_op`.
#[allow(clippy::too_many_arguments)]
pub fn backward_op(
    ctx: &GpuContext,
    x: &wgpu::Buffer,
    affine: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    dx: &wgpu::Buffer,
    stats: &wgpu::Buffer,
    rows: usize,
    d: usize,
    eps: f32,
    accumulate: bool,
) -> Result<Op> {
    let params = LayerNormBackwardParams { rows: u32_of(rows, "rows")?, d: u32_of(d, "width")?, eps, flags: u32::from(accumulate) };
    Op::per_item(ctx, &BACKWARD_KERNEL, &params, &[x, affine, dy, dx, stats], rows)
}

/// grad [2d] = [d scale | d bias], from x, the statistics `backward_op` kept, and dy.
pub fn param_grad_op(
    ctx: &GpuContext,
    x: &wgpu::Buffer,
    stats: &wgpu::Buffer,
    dy: &wgpu::Buffer,
    grad: &wgpu::Buffer,
    rows: usize,
    d: usize,
) -> Result<Op> {
    let params = LayerNormParamGradParams { rows: u32_of(rows, "rows")?, d: u32_of(d, "width")? };
    Op::per_item(ctx, &PARAM_GRAD_KERNEL, &params, &[x, stats, dy, grad], d)
}
