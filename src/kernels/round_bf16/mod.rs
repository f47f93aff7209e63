//! `round_bf16.wgsl`: values rounded in place to bfloat16 (kept as f32), vmoe's `Bfloat16Dispatcher`.

use super::{kernel_params, u32_of, wgsl, Op};
use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};

pub mod reference;
#[cfg(test)]
mod tests;

pub const KERNEL: Kernel = Kernel::new::<RoundBf16Params>("round_bf16", wgsl!("round_bf16/round_bf16.wgsl"));

kernel_params! {
    pub struct RoundBf16Params {
        len: u32,
    }
}

/// The first `len` values of `data` rounded to bfloat16 in place.
pub fn op(ctx: &GpuContext, data: &wgpu::Buffer, len: usize) -> Result<Op> {
    let params = RoundBf16Params { len: u32_of(len, "values")? };
    Op::per_item(ctx, &KERNEL, &params, &[data], len)
}
