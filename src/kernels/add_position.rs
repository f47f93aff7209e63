//! `add_position.wgsl`: x += the position embedding, repeated for every image.

use super::{u32_of, Op};
use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};

pub const KERNEL: Kernel = Kernel { name: "add_position", source: include_str!("../../shaders/add_position.wgsl") };

/// x [total] += pos [period] cyclically (period = m·d).
pub fn op(ctx: &GpuContext, pos: &wgpu::Buffer, x: &wgpu::Buffer, total: usize, period: usize) -> Result<Op> {
    Op::per_item(ctx, &KERNEL, &[u32_of(total, "values")?, u32_of(period, "period")?], &[pos, x], total)
}
