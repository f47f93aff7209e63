//! `patchify.wgsl`: images [b, S, S, C] → patch rows [b·m, P·P·C] for the patch-embedding GEMM.

use super::{kernel_params, u32_of, wgsl, Op};
use crate::config::VitConfig;
use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};

pub mod reference;
#[cfg(test)]
mod tests;

pub const KERNEL: Kernel = Kernel::new::<PatchifyParams>("patchify", wgsl!("patchify/patchify.wgsl"));

kernel_params! {
    pub struct PatchifyParams {
        total: u32,
        image_size: u32,
        patch_size: u32,
        channels: u32,
        grid: u32,
    }
}

pub fn op(ctx: &GpuContext, images: &wgpu::Buffer, patches: &wgpu::Buffer, batch: usize, c: &VitConfig) -> Result<Op> {
    let total = batch * c.tokens() * c.patch_dim();
    let params = PatchifyParams {
        total: u32_of(total, "patch values")?,
        image_size: c.image_size as u32,
        patch_size: c.patch_size as u32,
        channels: c.channels as u32,
        grid: c.grid() as u32,
    };
    Op::per_item(ctx, &KERNEL, &params, &[images, patches], total)
}
