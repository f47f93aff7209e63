//! `dispatch_softmax.wgsl`: D = softmax over tokens, per (example, slot).

use bytemuck::{Pod, Zeroable};

use super::{u32_of, Op};
use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};

pub const KERNEL: Kernel = Kernel {
    name: "dispatch_softmax",
    source: include_str!("../../shaders/dispatch_softmax.wgsl"),
};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    batch: u32,
    tokens: u32,
    slots: u32,
    _pad: u32,
}

/// Softmax of `logits` [batch, tokens, slots] over tokens into `out` (same layout).
pub fn op(
    ctx: &GpuContext,
    logits: &wgpu::Buffer,
    out: &wgpu::Buffer,
    batch: usize,
    tokens: usize,
    slots: usize,
) -> Result<Op> {
    let params = Params {
        batch: u32_of(batch, "batch")?,
        tokens: u32_of(tokens, "tokens")?,
        slots: u32_of(slots, "slots")?,
        _pad: 0,
    };
    u32_of(batch * slots, "batch·slots")?;
    Op::new(
        ctx,
        &KERNEL,
        bytemuck::bytes_of(&params),
        &[logits, out],
        (batch * slots).div_ceil(64) as u64,
    )
}
