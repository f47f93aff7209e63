//! `combine_softmax.wgsl`: C = softmax over all slots, per (example, token).

use super::{kernel_params, u32_of, wgsl, Op};
use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};

pub mod reference;
#[cfg(test)]
mod tests;

pub const KERNEL: Kernel = Kernel::new::<CombineSoftmaxParams>("combine_softmax", wgsl!("combine_softmax/combine_softmax.wgsl"));

kernel_params! {
    pub struct CombineSoftmaxParams {
        rows: u32,
        slots: u32,
    }
}

/// Softmax of each of `rows` rows of `logits` [rows, slots] into `out`.
pub fn op(ctx: &GpuContext, logits: &wgpu::Buffer, out: &wgpu::Buffer, rows: usize, slots: usize) -> Result<Op> {
    let params = CombineSoftmaxParams { rows: u32_of(rows, "rows")?, slots: u32_of(slots, "slots")? };
    Op::per_item(ctx, &KERNEL, &params, &[logits, out], rows)
}

pub mod backward;
pub mod backward_reference;
#[cfg(test)]
mod backward_tests;
