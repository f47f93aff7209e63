//! `router_scale.wgsl` and its backward: the Soft MoE router's slot parameters Φs = scale · Φ̂ from
//! the learned mu and scale, and their gradients (the backward of the L2 normalisation of Φ and of
//! the scale). The inference layer normalises Φ once at load and puts the scale into the logits
//! GEMM's alpha; a training step changes both, so they are computed on the device from buffers.

use super::{kernel_params, u32_of, wgsl, Op};
use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};

pub mod reference;
#[cfg(test)]
mod tests;

pub const KERNEL: Kernel = Kernel::new::<RouterScaleParams>("router_scale", wgsl!("router_scale/router_scale.wgsl"));
pub const BACKWARD_KERNEL: Kernel =
    Kernel::new::<RouterScaleParams>("router_scale_backward", wgsl!("router_scale/router_scale_backward.wgsl"));

kernel_params! {
    pub struct RouterScaleParams {
        d: u32,
        slots: u32,
        flags: u32,
    }
}

fn params(d: usize, slots: usize, normalize: bool) -> Result<RouterScaleParams> {
    Ok(RouterScaleParams { d: u32_of(d, "width")?, slots: u32_of(slots, "slots")?, flags: u32::from(normalize) })
}

/// Φ̂ and Φs = scale · Φ̂ [d, slots] from mu [d, slots] and scale [1].
#[allow(clippy::too_many_arguments)]
pub fn op(
    ctx: &GpuContext,
    mu: &wgpu::Buffer,
    scale: &wgpu::Buffer,
    phi_hat: &wgpu::Buffer,
    phi_scaled: &wgpu::Buffer,
    d: usize,
    slots: usize,
    normalize: bool,
) -> Result<Op> {
    Op::per_item(ctx, &KERNEL, &params(d, slots, normalize)?, &[mu, scale, phi_hat, phi_scaled], slots)
}

/// d mu [d, slots] and each column's share of d scale (`partial` [slots]; `column_sum` adds them)
/// from d Φs.
#[allow(clippy::too_many_arguments)]
pub fn backward_op(
    ctx: &GpuContext,
    mu: &wgpu::Buffer,
    scale: &wgpu::Buffer,
    d_phi_scaled: &wgpu::Buffer,
    d_mu: &wgpu::Buffer,
    partial: &wgpu::Buffer,
    d: usize,
    slots: usize,
    normalize: bool,
) -> Result<Op> {
    Op::per_item(ctx, &BACKWARD_KERNEL, &params(d, slots, normalize)?, &[mu, scale, d_phi_scaled, d_mu, partial], slots)
}
