//! `combine_softmax.wgsl`: C = softmax over all slots, per (example, token).

use bytemuck::{Pod, Zeroable};

use super::{u32_of, Op};
use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};

pub const KERNEL: Kernel = Kernel {
    name: "combine_softmax",
    source: include_str!("../../shaders/combine_softmax.wgsl"),
};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    rows: u32,
    slots: u32,
    _pad: [u32; 2],
}

/// Softmax of each of `rows` rows of `logits` [rows, slots] into `out`.
pub fn op(
    ctx: &GpuContext,
    logits: &wgpu::Buffer,
    out: &wgpu::Buffer,
    rows: usize,
    slots: usize,
) -> Result<Op> {
    let params = Params {
        rows: u32_of(rows, "rows")?,
        slots: u32_of(slots, "slots")?,
        _pad: [0; 2],
    };
    Op::new(
        ctx,
        &KERNEL,
        bytemuck::bytes_of(&params),
        &[logits, out],
        rows.div_ceil(64) as u64,
    )
}
