//! `add_position.wgsl`: x += the position embedding, repeated for every image (the class token's
//! row set rather than added).

use super::{kernel_params, u32_of, wgsl, Op};
use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};

pub mod reference;
#[cfg(test)]
mod tests;

pub const KERNEL: Kernel = Kernel::new::<AddPositionParams>("add_position", wgsl!("add_position/add_position.wgsl"));

kernel_params! {
    pub struct AddPositionParams {
        total: u32,
        period: u32,
        prefix: u32,
    }
}

/// x (`total` values) += pos (`period` values) cyclically, period = tokens·d; the first `prefix`
/// values of each period are set to pos (the class token's row, `prefix` = d; 0 without one).
pub fn op(ctx: &GpuContext, pos: &wgpu::Buffer, x: &wgpu::Buffer, total: usize, period: usize, prefix: usize) -> Result<Op> {
    let params = AddPositionParams {
        total: u32_of(total, "values")?,
        period: u32_of(period, "period")?,
        prefix: u32_of(prefix.min(period), "prefix")?,
    };
    Op::per_item(ctx, &KERNEL, &params, &[pos, x], total)
}

pub mod backward;
