//! One forward submission: upload the input, run the recorded dispatches, copy what was asked into
//! the readback buffer, submit once, and read it back asynchronously.

use crate::error::{Error, Result};
use crate::gpu::{read_f32, GpuContext};
use crate::kernels::{encode_ops, Op};

/// A region of a result buffer to read back: (source buffer, bytes), laid end to end in `staging`.
pub type Readback<'a> = (&'a wgpu::Buffer, u64);

pub async fn execute(
    ctx: &GpuContext,
    input: &wgpu::Buffer,
    data: &[f32],
    ops: &[Op],
    reads: &[Readback<'_>],
    staging: &wgpu::Buffer,
) -> Result<Vec<f32>> {
    ctx.check_alive()?;
    let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
    ctx.queue.write_buffer(input, 0, bytemuck::cast_slice(data));
    let refs: Vec<&Op> = ops.iter().collect();
    let mut encoder = encode_ops(ctx, &refs);
    let mut offset = 0;
    for (src, bytes) in reads {
        encoder.copy_buffer_to_buffer(src, 0, staging, offset, *bytes);
        offset += bytes;
    }
    ctx.queue.submit([encoder.finish()]);
    if let Some(e) = scope.pop().await {
        return Err(Error::device("running the forward pass", e));
    }
    let out = read_f32(ctx, staging, (offset / 4) as usize).await;
    ctx.check_alive()?;
    out
}
