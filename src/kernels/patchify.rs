//! `patchify.wgsl`: images [b, S, S, C] → patch rows [b·m, P·P·C] for the patch-embedding GEMM.

use super::{u32_of, Op};
use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};
use crate::model::VitConfig;

pub const KERNEL: Kernel = Kernel { name: "patchify", source: include_str!("../../shaders/patchify.wgsl") };

pub fn op(ctx: &GpuContext, images: &wgpu::Buffer, patches: &wgpu::Buffer, batch: usize, c: &VitConfig) -> Result<Op> {
    let total = batch * c.tokens() * c.patch_dim();
    let params = [u32_of(total, "patch values")?, c.image_size as u32, c.patch_size as u32, c.channels as u32, c.grid() as u32];
    Op::per_item(ctx, &KERNEL, &params, &[images, patches], total)
}
