//! Shared test helpers: the device, the two backends, SPEC's layers and a seeded generator.

use std::sync::Arc;

use softmoe::reference;
use softmoe::{Gelu, GpuContext, SoftMoe, SoftMoeVariant, SoftMoeWeights, Tensor};

/// The one device of the test binary (see `softmoe::testing::shared_context`).
pub fn ctx() -> Arc<GpuContext> {
    softmoe::testing::shared_context()
}

/// A layer's outputs in f64, whichever backend made them.
pub struct Out {
    pub y: Vec<f64>,
    pub dispatch: Vec<f64>,
    pub combine: Vec<f64>,
}

/// The implementations every layer test runs against: written once, run per backend.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Gpu,
    Cpu,
}

pub const BACKENDS: [Backend; 2] = [Backend::Gpu, Backend::Cpu];

impl Backend {
    pub fn forward(self, w: &SoftMoeWeights, x: &Tensor) -> Out {
        match self {
            Backend::Gpu => {
                let layer = pollster::block_on(SoftMoe::new(ctx(), w)).expect("layer upload");
                gpu_forward(&layer, x)
            }
            Backend::Cpu => {
                let r = reference::soft_moe_forward(w, x).expect("reference forward");
                Out { y: r.y, dispatch: r.dispatch, combine: r.combine }
            }
        }
    }
}

pub fn gpu_forward(layer: &SoftMoe, x: &Tensor) -> Out {
    let o = pollster::block_on(layer.forward_with_maps(x)).expect("gpu forward");
    let f = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<_>>();
    Out { y: f(&o.y.data), dispatch: f(&o.dispatch.unwrap().data), combine: f(&o.combine.unwrap().data) }
}

/// Largest absolute difference; panics on a length mismatch or any NaN or infinity on either side.
pub fn max_abs_diff<A: Copy + Into<f64>, B: Copy + Into<f64>>(what: &str, got: &[A], want: &[B]) -> f64 {
    softmoe::compare::max_abs_diff(got, want).unwrap_or_else(|e| panic!("{what}: {e}")).max
}

/// Largest |v|; panics on any NaN or infinity.
pub fn max_abs<A: Copy + Into<f64>>(what: &str, v: &[A]) -> f64 {
    softmoe::compare::max_abs(v).unwrap_or_else(|e| panic!("{what}: {e}"))
}

pub use softmoe::random::Rng;
pub use softmoe::testing::{assert_bits, assert_close, f32_tol, to_f64};

/// A random layer (see `softmoe::random`), checked valid.
#[allow(clippy::too_many_arguments)]
pub fn random_layer(rng: &mut Rng, d: usize, n: usize, p: usize, h: usize, scale: f32, gelu: Gelu, normalize: bool) -> SoftMoeWeights {
    let w = softmoe::random::random_layer(rng, softmoe::random::LayerShape { d, n, p, h, scale, gelu, normalize });
    w.validate().unwrap();
    w
}

pub use softmoe::random::random_input;

/// SPEC §1 small vector: m=4, d=2, n=2, p=1, h=3, scale=1.
pub fn spec_small(gelu: Gelu) -> (SoftMoeWeights, Tensor) {
    let w = SoftMoeWeights {
        d: 2,
        n: 2,
        p: 1,
        h: 3,
        // mu[:, e, 0] = e-th basis vector, so mu as [d, n, p] is the identity.
        mu: vec![1.0, 0.0, 0.0, 1.0],
        scale: 1.0,
        w0: vec![1.0, 0.0, -1.0, 0.0, 1.0, 1.0, 2.0, 0.0, 0.0, 0.0, -1.0, 1.0],
        b0: vec![0.0, 0.1, 0.0, 0.0, 0.0, -0.1],
        w1: vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.5, 0.0, 0.0, 0.5, -1.0, 1.0],
        b1: vec![0.0, 0.0, 0.1, -0.1],
        gelu,
        normalize: true,
        dispatch_bfloat16: false,
        variant: SoftMoeVariant::Vmoe,
        norm_scale: Vec::new(),
        slot_norm_scale: Vec::new(),
    };
    let x = Tensor::new(vec![1, 4, 2], vec![1.0, 0.0, 0.0, 1.0, 1.0, 1.0, -1.0, 0.0]).unwrap();
    (w, x)
}

/// SPEC §1 medium vector: B=2, m=16, d=8, h=16, n=4, p=2, scale=2, sin/cos fills over flat C order.
pub fn spec_medium() -> (SoftMoeWeights, Tensor) {
    let (b, m, d, h, n, p) = (2, 16, 8, 16, 4, 2);
    let fill = |len: usize, f: &dyn Fn(f64) -> f64| (0..len).map(|t| f(t as f64) as f32).collect::<Vec<f32>>();
    let w = SoftMoeWeights {
        d,
        n,
        p,
        h,
        mu: fill(d * n * p, &|t| (0.23 * t).cos()),
        scale: 2.0,
        w0: fill(n * d * h, &|t| 0.3 * (0.11 * t + 0.5).sin()),
        b0: fill(n * h, &|t| 0.05 * (0.7 * t).cos()),
        w1: fill(n * h * d, &|t| 0.3 * (0.13 * t + 0.2).cos()),
        b1: fill(n * d, &|t| 0.05 * (0.9 * t).sin()),
        gelu: Gelu::Tanh,
        normalize: true,
        dispatch_bfloat16: false,
        variant: SoftMoeVariant::Vmoe,
        norm_scale: Vec::new(),
        slot_norm_scale: Vec::new(),
    };
    let x = Tensor::new(vec![b, m, d], fill(b * m * d, &|t| (0.37 * t + 0.1).sin())).unwrap();
    (w, x)
}

/// A storage buffer holding `data` on the shared device.
pub fn upload(data: &[f32]) -> wgpu::Buffer {
    softmoe::testing::upload(&ctx(), data)
}

/// Runs `ops` in one submit on the shared device, then reads `len` values of `out`.
pub fn run_and_read(ops: &[&softmoe::kernels::Op], out: &wgpu::Buffer, len: usize) -> Vec<f64> {
    softmoe::testing::run_and_read(&ctx(), ops, out, len)
}

/// A small ViT config for tests.
#[allow(clippy::too_many_arguments)]
pub fn vit_config(
    image: usize,
    channels: usize,
    patch: usize,
    d: usize,
    layers: usize,
    heads: usize,
    moe: &[usize],
    n: usize,
    p: usize,
) -> softmoe::model::VitConfig {
    softmoe::model::VitConfig {
        image_size: image,
        channels,
        patch_size: patch,
        hidden_size: d,
        num_layers: layers,
        num_heads: heads,
        mlp_dim: 2 * d + 1,
        num_classes: 10,
        moe_layers: moe.to_vec(),
        num_experts: n,
        slots_per_expert: p,
        expert_mlp_dim: 2 * d - 1,
        gelu: Gelu::Tanh,
        normalize: true,
        layer_norm_eps: 1e-6,
        class_names: Vec::new(),
        router: None,
        group_size: 0,
        attention_qk_norm: false,
        classifier: softmoe::Pooling::Gap,
        dispatch_bfloat16: false,
        moe_variant: SoftMoeVariant::Vmoe,
    }
}
