//! `transpose.wgsl`: the transpose of batched row-major matrices (a copy, so exact).

use super::{kernel_params, u32_of, wgsl, Op};
use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};

#[cfg(test)]
mod tests;

pub const KERNEL: Kernel = Kernel::new::<TransposeParams>("transpose", wgsl!("transpose/transpose.wgsl"));

kernel_params! {
    pub struct TransposeParams {
        batch: u32,
        rows: u32,
        cols: u32,
    }
}

/// dst [batch, cols, rows] = the transpose of each of src's `batch` [rows, cols] matrices.
pub fn op(ctx: &GpuContext, src: &wgpu::Buffer, dst: &wgpu::Buffer, batch: usize, rows: usize, cols: usize) -> Result<Op> {
    let items = batch * rows * cols;
    u32_of(items, "values")?;
    let params = TransposeParams { batch: u32_of(batch, "batch")?, rows: u32_of(rows, "rows")?, cols: u32_of(cols, "columns")? };
    Op::per_item(ctx, &KERNEL, &params, &[src, dst], items)
}

/// The same on the CPU.
pub fn transpose_batched(src: &[f32], batch: usize, rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; src.len()];
    for z in 0..batch {
        for r in 0..rows {
            for c in 0..cols {
                out[(z * cols + c) * rows + r] = src[(z * rows + r) * cols + c];
            }
        }
    }
    out
}
