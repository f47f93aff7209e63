//! `cross_entropy.wgsl` (loss and predicted class per example) and `cross_entropy_backward.wgsl`
//! (d loss / d logits): softmax cross-entropy with label smoothing, the trainer's loss.

use super::{kernel_params, u32_of, wgsl, Op};
use crate::error::{Error, Result};
use crate::gpu::{GpuContext, Kernel};

pub mod reference;
#[cfg(test)]
mod tests;

pub const KERNEL: Kernel = Kernel::new::<CrossEntropyParams>(
    "cross_entropy",
    wgsl!("cross_entropy/cross_entropy_common.wgsl", "cross_entropy/cross_entropy.wgsl"),
);
pub const BACKWARD_KERNEL: Kernel = Kernel::new::<CrossEntropyParams>(
    "cross_entropy_backward",
    wgsl!("cross_entropy/cross_entropy_common.wgsl", "cross_entropy/cross_entropy_backward.wgsl"),
);

kernel_params! {
    pub struct CrossEntropyParams {
        batch: u32,
        classes: u32,
        smoothing: f32,
        grad_scale: f32,
    }
}

fn params(batch: usize, classes: usize, smoothing: f32) -> Result<CrossEntropyParams> {
    if !(0.0..1.0).contains(&smoothing) {
        return Err(Error::input("label smoothing", "a value in [0, 1)", smoothing));
    }
    if classes == 0 {
        return Err(Error::input("classes", "at least one class", 0));
    }
    Ok(CrossEntropyParams {
        batch: u32_of(batch, "batch")?,
        classes: u32_of(classes, "classes")?,
        smoothing,
        grad_scale: 1.0 / batch.max(1) as f32,
    })
}

/// out [batch, 2] = (loss, predicted class) of logits [batch, classes] against `labels` (u32, each
/// below `classes`: the caller checks them, a kernel cannot refuse).
#[allow(clippy::too_many_arguments)]
pub fn op(
    ctx: &GpuContext,
    logits: &wgpu::Buffer,
    labels: &wgpu::Buffer,
    out: &wgpu::Buffer,
    batch: usize,
    classes: usize,
    smoothing: f32,
) -> Result<Op> {
    Op::per_item(ctx, &KERNEL, &params(batch, classes, smoothing)?, &[logits, labels, out], batch)
}

#[allow(clippy::too_many_arguments)]
/// grad [batch, classes] = d (mean loss over the batch) / d logits.
pub fn backward_op(
    ctx: &GpuContext,
    logits: &wgpu::Buffer,
    labels: &wgpu::Buffer,
    grad: &wgpu::Buffer,
    batch: usize,
    classes: usize,
    smoothing: f32,
) -> Result<Op> {
    Op::per_item(ctx, &BACKWARD_KERNEL, &params(batch, classes, smoothing)?, &[logits, labels, grad], batch)
}

/// Refuses a label outside 0..classes, naming the example.
pub fn check_labels(labels: &[u32], classes: usize) -> Result<()> {
    match labels.iter().position(|&l| l as usize >= classes) {
        Some(i) => Err(Error::input("labels", format!("class indices below {classes}"), format!("{} at example {i}", labels[i]))),
        None => Ok(()),
    }
}
