//! `adamw.wgsl`: AdamW with decoupled weight decay, the trainer's optimiser (candle-nn's `AdamW`,
//! whose operations it repeats in order), with the global-norm clipping factor of `grad_norm`.

use super::{kernel_params, u32_of, wgsl, Op};
use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};

pub mod reference;
#[cfg(test)]
mod tests;

pub const KERNEL: Kernel = Kernel::new::<AdamwParams>("adamw", wgsl!("adamw/adamw.wgsl"));

/// Values of the step-values buffer `hyper` the kernel reads: [lr, 1 − lr·λ, 1/(1 − β1^t),
/// 1/(1 − β2^t), clipping factor, gradient norm, 0, 0].
pub const HYPER_LEN: usize = 8;

kernel_params! {
    pub struct AdamwParams {
        count: u32,
        decay: u32,
        beta1: f32,
        beta2: f32,
        one_minus_beta1: f32,
        one_minus_beta2: f32,
        eps: f32,
    }
}

/// AdamW's constants.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adamw {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for Adamw {
    /// The trainer's: β = (0.9, 0.999), eps 1e-8, weight decay 0.05.
    fn default() -> Self {
        Adamw { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.05 }
    }
}

impl Adamw {
    /// hyper[0..4] for step `t` (1-based) at learning rate `lr`, computed in f64 and rounded once,
    /// as candle computes its scalars.
    pub fn step_values(&self, t: u64, lr: f64) -> [f32; 4] {
        let t = t.min(i32::MAX as u64) as i32;
        [
            lr as f32,
            (1.0 - lr * self.weight_decay) as f32,
            (1.0 / (1.0 - self.beta1.powi(t))) as f32,
            (1.0 / (1.0 - self.beta2.powi(t))) as f32,
        ]
    }

    #[allow(clippy::too_many_arguments)]
    /// One tensor's update: `param` and `moments` (m then v, 2·count values) in place.
    pub fn op(
        &self,
        ctx: &GpuContext,
        param: &wgpu::Buffer,
        grad: &wgpu::Buffer,
        moments: &wgpu::Buffer,
        hyper: &wgpu::Buffer,
        count: usize,
        decay: bool,
    ) -> Result<Op> {
        let params = AdamwParams {
            count: u32_of(count, "parameter values")?,
            decay: u32::from(decay),
            beta1: self.beta1 as f32,
            beta2: self.beta2 as f32,
            one_minus_beta1: (1.0 - self.beta1) as f32,
            one_minus_beta2: (1.0 - self.beta2) as f32,
            eps: self.eps as f32,
        };
        Op::per_item(ctx, &KERNEL, &params, &[param, grad, moments, hyper], count)
    }
}
