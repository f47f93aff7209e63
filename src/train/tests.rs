//! The GPU trainer against the f64 reference: gradients of one batch for every tensor, the AdamW
//! update wiring, and bit-identical loss traces across runs.

use crate::config::{Gelu, VitConfig};
use crate::kernels::adamw::reference::adamw_f64;
use crate::random::Rng;
use crate::reference::vit_gradients_f64;
use crate::testing::{assert_bits, assert_close, shared_context};
use crate::train::init::init_weights;
use crate::train::{TrainOptions, Trainer};
use crate::weights::params::ParamLayout;
use crate::weights::VitWeights;

/// A small ViT with sizes that fill no workgroup: `image` × `image` images in 4×4 patches, d, heads,
/// 2 blocks (the second Soft MoE, n experts × p slots, hidden h), 3 classes.
#[allow(clippy::too_many_arguments)]
fn config(image: usize, d: usize, heads: usize, f: usize, n: usize, p: usize, h: usize, gelu: Gelu, normalize: bool) -> VitConfig {
    VitConfig {
        image_size: image,
        channels: 1,
        patch_size: 4,
        hidden_size: d,
        num_layers: 2,
        num_heads: heads,
        mlp_dim: f,
        num_classes: 3,
        moe_layers: vec![1],
        num_experts: n,
        slots_per_expert: p,
        expert_mlp_dim: h,
        gelu,
        normalize,
        layer_norm_eps: 1e-6,
        class_names: Vec::new(),
        router: None,
        group_size: 0,
        attention_qk_norm: false,
        classifier: crate::config::Pooling::Gap,
        dispatch_bfloat16: false,
        moe_variant: crate::config::SoftMoeVariant::Vmoe,
    }
}

/// Random weights of the config (LayerNorm scales near 1, a nonzero head so gradients flow).
fn random_weights(c: &VitConfig, rng: &mut Rng) -> VitWeights {
    let layout = ParamLayout::new(c).unwrap();
    let params: Vec<Vec<f32>> = layout
        .specs
        .iter()
        .map(|s| {
            let mut v = rng.vec(s.len, 0.5);
            if s.name.contains("LayerNorm") || s.name.ends_with("encoder_norm") {
                v[..s.len / 2].iter_mut().for_each(|x| *x += 1.0);
            }
            if s.name.ends_with("Router/scale") {
                v[0] = 2.0;
            }
            v
        })
        .collect();
    VitWeights::from_params(c.clone(), &params).unwrap()
}

fn batch(c: &VitConfig, rng: &mut Rng, b: usize) -> (Vec<f32>, Vec<u32>) {
    let images = rng.vec(b * c.image_size * c.image_size, 0.5).into_iter().map(|v| v + 0.5).collect();
    let labels = (0..b).map(|_| rng.range(0, c.num_classes - 1) as u32).collect();
    (images, labels)
}

#[test]
fn gpu_gradients_match_the_f64_reference() {
    gradients_match_the_f64_reference(shared_context(), "this adapter's kernels");
}

/// The same with the GEMM kernels a discrete GPU gets (split-K for few rows, the tiled vec4 kernel
/// for many), run on whatever adapter this is.
#[test]
fn gpu_gradients_match_the_f64_reference_with_a_gpus_kernels() {
    let opts = crate::gpu::GpuOptions { kernels_for: Some(wgpu::DeviceType::DiscreteGpu), ..Default::default() };
    gradients_match_the_f64_reference(pollster::block_on(crate::gpu::GpuContext::with_options(opts)).unwrap(), "a GPU's kernels");
}

fn gradients_match_the_f64_reference(ctx: std::sync::Arc<crate::gpu::GpuContext>, kernels: &str) {
    let mut rng = Rng::new(600);
    let cases = [
        (config(8, 8, 2, 12, 3, 2, 5, Gelu::Tanh, true), 3, 0.1),
        (config(12, 12, 3, 10, 3, 1, 7, Gelu::Erf, false), 5, 0.0),
        (config(12, 16, 4, 32, 4, 2, 20, Gelu::Tanh, true), 2, 0.1),
        // 72 token rows: the tiled vec4 GEMM's many-row case on a GPU.
        (config(12, 16, 4, 32, 4, 2, 20, Gelu::Tanh, true), 8, 0.1),
    ];
    for (c, b, smoothing) in cases {
        let w = random_weights(&c, &mut rng);
        let (images, labels) = batch(&c, &mut rng, b);
        let options = TrainOptions { label_smoothing: smoothing, ..Default::default() };
        let mut t = pollster::block_on(Trainer::new(ctx.clone(), &w, options)).unwrap();
        let (loss, grads) = pollster::block_on(t.gradients(&images, &labels)).unwrap();
        let p64: Vec<Vec<f64>> = w.to_params().unwrap().iter().map(|v| v.iter().map(|&x| x as f64).collect()).collect();
        let img64: Vec<f64> = images.iter().map(|&v| v as f64).collect();
        let (want_loss, want) = vit_gradients_f64(&c, &p64, &img64, &labels, smoothing as f64).unwrap();
        let what = format!(
            "{kernels}, d{} n{} p{} h{} {:?} normalize {}",
            c.hidden_size, c.num_experts, c.slots_per_expert, c.expert_mlp_dim, c.gelu, c.normalize
        );
        assert_close(&format!("loss, {what}"), &[loss], &[want_loss], 1e-5);
        let layout = ParamLayout::new(&c).unwrap();
        for (spec, (got, want)) in layout.specs.iter().zip(grads.iter().zip(&want)) {
            // f32 through the whole forward and backward: errors relative to the tensor's largest gradient
            // (measured ≤ 0.4 % of 2e-4 of it on lavapipe).
            let big = want.iter().fold(1e-3f64, |a, v| a.max(v.abs()));
            assert_close(&format!("d {} ({what})", spec.name), got, want, 1e-5 * big);
        }
    }
}

#[test]
fn a_step_applies_adamw_to_the_gradients_of_its_batch() {
    let ctx = shared_context();
    let mut rng = Rng::new(601);
    let c = config(8, 8, 2, 12, 3, 2, 5, Gelu::Tanh, true);
    let w = random_weights(&c, &mut rng);
    let (images, labels) = batch(&c, &mut rng, 4);
    let options = TrainOptions { max_grad_norm: 0.5, ..Default::default() };
    let mut t = pollster::block_on(Trainer::new(ctx.clone(), &w, options)).unwrap();
    let (_, grads) = pollster::block_on(t.gradients(&images, &labels)).unwrap();
    let lr = 3e-3;
    let out = pollster::block_on(t.step(&images, &labels, lr)).unwrap();
    let g64: Vec<Vec<f64>> = grads.iter().map(|v| v.iter().map(|&x| x as f64).collect()).collect();
    let norm = g64.iter().flatten().map(|v| v * v).sum::<f64>().sqrt();
    assert_close("gradient norm", &[out.grad_norm], &[norm], 1e-5 * norm);
    assert!(norm > 0.5, "the test needs clipping to act (norm {norm})");
    let clip = 0.5 / (norm + 1e-6);
    let after = pollster::block_on(t.params()).unwrap();
    let layout = ParamLayout::new(&c).unwrap();
    for ((spec, theta), (g, got)) in layout.specs.iter().zip(w.to_params().unwrap()).zip(g64.iter().zip(&after)) {
        let theta: Vec<f64> = theta.iter().map(|&v| v as f64).collect();
        let g: Vec<f64> = g.iter().map(|v| v * clip).collect();
        let zeros = vec![0.0; g.len()];
        let (want, _, _) = adamw_f64(&options.adamw, 1, lr, spec.decay, &theta, &g, &zeros, &zeros);
        // The first step moves each value by about lr·sign(g), plus the decay.
        assert_close(&format!("{} after one step", spec.name), got, &want, 2e-6);
    }
}

#[test]
fn the_loss_trace_is_bit_identical_across_runs_and_falls() {
    let ctx = shared_context();
    let c = config(12, 16, 4, 32, 4, 2, 20, Gelu::Tanh, true);
    let w = init_weights(&c, 7).unwrap();
    let mut rng = Rng::new(602);
    let batches: Vec<(Vec<f32>, Vec<u32>)> = (0..3).map(|_| batch(&c, &mut rng, 6)).collect();
    let run = || {
        let mut t = pollster::block_on(Trainer::new(ctx.clone(), &w, TrainOptions { max_grad_norm: 1.0, ..Default::default() })).unwrap();
        let mut trace = Vec::new();
        for i in 0..24 {
            let (images, labels) = &batches[i % 3];
            trace.push(pollster::block_on(t.step(images, labels, 1e-2)).unwrap().loss);
        }
        (trace, pollster::block_on(t.params()).unwrap().concat())
    };
    let (a, pa) = run();
    let (b, pb) = run();
    assert_bits("loss trace", &a, &b);
    assert_bits("weights after 24 steps", &pa, &pb);
    let (first, last) = (a[..3].iter().sum::<f64>(), a[21..].iter().sum::<f64>());
    assert!(last < first * 0.7, "the loss on three repeated batches went from {first} to {last}: {a:?}");
}

#[test]
fn bad_batches_are_refused_by_name() {
    let ctx = shared_context();
    let c = config(8, 8, 2, 12, 3, 2, 5, Gelu::Tanh, true);
    let mut t = pollster::block_on(Trainer::new(ctx, &init_weights(&c, 1).unwrap(), TrainOptions::default())).unwrap();
    let img = vec![0.5; 64];
    let e = pollster::block_on(t.step(&img, &[3], 1e-3)).unwrap_err().to_string();
    assert!(e.contains("labels") && e.contains("3 at example 0"), "{e}");
    let e = pollster::block_on(t.step(&img[..63], &[1], 1e-3)).unwrap_err().to_string();
    assert!(e.contains("images"), "{e}");
    let e = pollster::block_on(t.step(&[f32::NAN; 64], &[1], 1e-3)).unwrap_err().to_string();
    assert!(e.contains("non-finite"), "{e}");
    let e = pollster::block_on(t.step(&img, &[1], f64::NAN)).unwrap_err().to_string();
    assert!(e.contains("learning rate"), "{e}");
}

/// Where a step's time goes on the shipped Soft MoE config (batch 128): `cargo test --release --lib
/// profile_a_step -- --ignored --nocapture`.
#[test]
#[ignore]
fn profile_a_step() {
    let ctx = shared_context();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("weights/soft-moe-vit");
    let w = VitWeights::load(dir).unwrap();
    let mut rng = Rng::new(9);
    let (images, labels): (Vec<f32>, Vec<u32>) =
        (rng.vec(128 * 784, 0.5).iter().map(|v| v + 0.5).collect(), (0..128).map(|i| i % 10).collect());
    let mut t = pollster::block_on(Trainer::new(ctx, &w, TrainOptions::default())).unwrap();
    let times = pollster::block_on(t.profile(&images, &labels)).unwrap().expect("timestamp queries");
    let mut by: std::collections::BTreeMap<&str, (f64, usize)> = Default::default();
    for (label, s) in &times {
        let e = by.entry(label).or_default();
        e.0 += s;
        e.1 += 1;
    }
    let total: f64 = times.iter().map(|t| t.1).sum();
    let mut rows: Vec<_> = by.into_iter().collect();
    rows.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    for (label, (s, n)) in rows {
        eprintln!("{label:28} {n:4} dispatches {:9.1} ms {:5.1} %", s * 1e3, 100.0 * s / total);
    }
    eprintln!("total {:.1} ms for 128 images", total * 1e3);
}
