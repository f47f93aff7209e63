//! Shared test helpers: the device, the two backends, SPEC's layers and a seeded generator.

use std::sync::{Arc, OnceLock};

use softmoe::reference;
use softmoe::{Gelu, GpuContext, SoftMoe, SoftMoeWeights, Tensor};

/// One device for the whole test binary; no adapter is a loud failure, never a skip.
pub fn ctx() -> Arc<GpuContext> {
    static CTX: OnceLock<Arc<GpuContext>> = OnceLock::new();
    // SOFTMOE_TEST_WEBGPU_LIMITS=1 runs everything within WebGPU's default limits and without
    // subgroups, as a browser would.
    let browser = std::env::var_os("SOFTMOE_TEST_WEBGPU_LIMITS").is_some();
    let opts = softmoe::GpuOptions { webgpu_default_limits: browser, no_subgroups: browser, ..Default::default() };
    CTX.get_or_init(|| match pollster::block_on(GpuContext::with_options(opts)) {
        Ok(c) => c,
        Err(e) => panic!("GPU tests need a wgpu adapter (CI installs mesa-vulkan-drivers): {e}"),
    })
    .clone()
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

/// Exact equality of the bits (f32 or f64), reporting the first difference rather than both vectors.
pub fn assert_bits<A: Copy + Into<f64>>(what: &str, got: &[A], want: &[A]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let bits = |v: A| v.into().to_bits();
    if let Some(i) = (0..got.len()).find(|&i| bits(got[i]) != bits(want[i])) {
        panic!("{what}: first difference at {i} of {}: {} vs {}", got.len(), got[i].into(), want[i].into());
    }
}

/// Every element within `tol` of the reference, none NaN or infinite; the message names the worst one.
pub fn assert_close<A: Copy + Into<f64>, B: Copy + Into<f64>>(what: &str, got: &[A], want: &[B], tol: f64) {
    let d = softmoe::compare::max_abs_diff(got, want).unwrap_or_else(|e| panic!("{what}: {e}"));
    // Printed so that `--nocapture` shows every tolerance's headroom.
    eprintln!("{what}: max |error| {:.2e}, tolerance {tol:.2e} ({:.1}% used)", d.max, 100.0 * d.max / tol);
    if let Err(e) = d.within(what, tol) {
        panic!("{e}");
    }
}

pub use softmoe::random::Rng;

/// f32's relative rounding unit, 2⁻²³.
pub const EPS: f64 = f32::EPSILON as f64;

/// The suite's f32 error model, for outputs of size up to `magnitude` computed through reductions of
/// length up to `k`: a length-k f32 sum of random-signed terms rounds by about ε·√k times its terms'
/// size, at most ε·√k·magnitude; the + 8 covers the fixed-cost steps around it (exp, division,
/// square root, GELU). Measured errors use 1–50 % of it on lavapipe (`--nocapture` prints each).
pub fn f32_tol(k: usize, magnitude: f64) -> f64 {
    EPS * ((k as f64).sqrt() + 8.0) * magnitude
}

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
    };
    let x = Tensor::new(vec![b, m, d], fill(b * m * d, &|t| (0.37 * t + 0.1).sin())).unwrap();
    (w, x)
}

/// A storage buffer holding `data` (or zeros of that length).
pub fn upload(data: &[f32]) -> wgpu::Buffer {
    upload_on(&ctx(), data)
}

/// As `upload`, on another device.
pub fn upload_on(c: &GpuContext, data: &[f32]) -> wgpu::Buffer {
    use wgpu::util::DeviceExt;
    let bytes: &[u8] = bytemuck::cast_slice(data);
    c.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("test"),
        contents: if bytes.is_empty() { &[0u8; 4] } else { bytes },
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
    })
}

/// Runs `ops` in one submit, then reads `len` values of `out`.
pub fn run_and_read(ops: &[&softmoe::kernels::Op], out: &wgpu::Buffer, len: usize) -> Vec<f64> {
    run_and_read_on(&ctx(), ops, out, len)
}

/// As `run_and_read`, on another device.
pub fn run_and_read_on(c: &GpuContext, ops: &[&softmoe::kernels::Op], out: &wgpu::Buffer, len: usize) -> Vec<f64> {
    let staging = c.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("test readback"),
        size: (len.max(1) * 4) as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = softmoe::kernels::encode_ops(c, ops);
    enc.copy_buffer_to_buffer(out, 0, &staging, 0, (len * 4) as u64);
    c.queue.submit([enc.finish()]);
    let v = pollster::block_on(softmoe::gpu::read_f32(c, &staging, len)).expect("readback");
    v.into_iter().map(|a| a as f64).collect()
}

pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&a| a as f64).collect()
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
    }
}
