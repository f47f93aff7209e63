//! `gelu.wgsl` and `gelu_backward.wgsl`: GELU (tanh or erf) as its own kernel and its derivative.
//! Inference fuses GELU into the first GEMM's epilogue; training keeps the pre-activation for the
//! backward, so it runs the GEMM with the bias only and then this kernel (the same formulas).

use super::{kernel_params, u32_of, wgsl, Op};
use crate::config::Gelu;
use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};

pub mod reference;
#[cfg(test)]
mod tests;

pub const KERNEL: Kernel = Kernel::new::<GeluParams>("gelu", wgsl!("gelu/gelu_functions.wgsl", "gelu/gelu_common.wgsl", "gelu/gelu.wgsl"));
pub const BACKWARD_KERNEL: Kernel =
    Kernel::new::<GeluParams>("gelu_backward", wgsl!("gelu/gelu_functions.wgsl", "gelu/gelu_common.wgsl", "gelu/gelu_backward.wgsl"));

kernel_params! {
    pub struct GeluParams {
        count: u32,
        kind: u32,
    }
}

fn params(count: usize, kind: Gelu) -> Result<GeluParams> {
    Ok(GeluParams { count: u32_of(count, "GELU values")?, kind: if kind == Gelu::Erf { 2 } else { 1 } })
}

/// y = GELU(x) for `count` values.
pub fn op(ctx: &GpuContext, x: &wgpu::Buffer, y: &wgpu::Buffer, count: usize, kind: Gelu) -> Result<Op> {
    Op::per_item(ctx, &KERNEL, &params(count, kind)?, &[x, y], count)
}

/// grad ← grad · GELU'(x) for `count` values (the gradient of the pre-activation, in place).
pub fn backward_op(ctx: &GpuContext, x: &wgpu::Buffer, grad: &wgpu::Buffer, count: usize, kind: Gelu) -> Result<Op> {
    Op::per_item(ctx, &BACKWARD_KERNEL, &params(count, kind)?, &[x, grad], count)
}
