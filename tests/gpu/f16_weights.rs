//! Expert kernels stored as f16: the error against the f64 reference (of the f32 weights), and
//! batch invariance, which must survive the change of storage.

use softmoe::layers::LayerOptions;
use softmoe::{Gelu, SoftMoe, Tensor};

use crate::common::{ctx, gpu_forward, max_abs, max_abs_diff, random_input, random_layer, Rng};

/// Half-precision weights round each kernel value by up to 2⁻¹¹ relatively; an output of the two
/// Dense layers then moves by a few of those relative to its magnitude.
const F16_REL_TOL: f64 = 2.0 / 2048.0;

#[test]
fn f16_expert_weights_stay_within_the_stated_error() {
    let mut worst: f64 = 0.0;
    for (i, &(b, m, d, n, p, h)) in [(1, 49, 64, 8, 2, 128), (3, 17, 12, 5, 3, 20), (2, 196, 384, 16, 1, 1536)].iter().enumerate() {
        let mut rng = Rng::new(600 + i as u64);
        let w = random_layer(&mut rng, d, n, p, h, 5.0, Gelu::Tanh, true);
        let x = random_input(&mut rng, b, m, d);
        let layer = pollster::block_on(SoftMoe::with_options(ctx(), &w, LayerOptions { f16_weights: true })).unwrap();
        let got = gpu_forward(&layer, &x);
        let want = softmoe::reference::soft_moe_forward(&w, &x).unwrap();
        let y_max = max_abs("reference y", &want.y);
        let err = max_abs_diff(&format!("case {i} y"), &got.y, &want.y);
        eprintln!("f16 weights, b={b} m={m} d={d} n={n} p={p} h={h}: max |Δy| {err:.2e} = {:.2e} of max |y|", err / y_max);
        assert!(err <= F16_REL_TOL * y_max, "case {i}: error {err:e} above {:e}", F16_REL_TOL * y_max);
        // The routing does not touch the expert weights: D and C are as exact as with f32.
        let werr = max_abs_diff(&format!("case {i} combine"), &got.combine, &want.combine);
        let ctol = crate::common::f32_tol(d.max(n * p), 1.0);
        assert!(werr <= ctol, "case {i}: combine weights moved by {werr:e} (tolerance {ctol:e})");
        worst = worst.max(err / y_max);
    }
    eprintln!("f16 weights: worst error {worst:.2e} of max |y| (tolerance {F16_REL_TOL:.2e})");
}

#[test]
fn f16_expert_weights_keep_batch_invariance() {
    let mut rng = Rng::new(610);
    let w = random_layer(&mut rng, 16, 6, 2, 32, 8.0, Gelu::Erf, true);
    let layer = pollster::block_on(SoftMoe::with_options(ctx(), &w, LayerOptions { f16_weights: true })).unwrap();
    let x = random_input(&mut rng, 9, 11, 16);
    let all = gpu_forward(&layer, &x);
    for i in [0, 4, 8] {
        let one = Tensor::new(vec![1, 11, 16], x.data[i * 176..(i + 1) * 176].to_vec()).unwrap();
        crate::common::assert_bits(&format!("example {i}"), &gpu_forward(&layer, &one).y, &all.y[i * 176..(i + 1) * 176]);
    }
}

/// The weights as the f16 path stores them: each expert kernel value rounded to the nearest f16.
fn rounded_to_f16(w: &softmoe::SoftMoeWeights) -> softmoe::SoftMoeWeights {
    let round = |v: &[f32]| v.iter().map(|&a| half::f16::from_f32(a).to_f32()).collect::<Vec<f32>>();
    softmoe::SoftMoeWeights { w0: round(&w.w0), w1: round(&w.w1), ..w.clone() }
}

#[test]
fn f16_storage_is_exactly_f32_arithmetic_on_f16_rounded_kernels() {
    // Only the storage changes: against the f64 reference of the rounded kernels the f16 path has
    // the f32 path's error bound (tests/gpu/sweep.rs), orders of magnitude below F16_REL_TOL.
    for (i, &(b, m, d, n, p, h)) in [(1, 49, 64, 8, 2, 128), (3, 17, 12, 5, 3, 20), (2, 33, 36, 3, 1, 260)].iter().enumerate() {
        let mut rng = Rng::new(620 + i as u64);
        let scale = 5.0;
        let w = random_layer(&mut rng, d, n, p, h, scale, Gelu::Tanh, true);
        let x = random_input(&mut rng, b, m, d);
        let layer = pollster::block_on(SoftMoe::with_options(ctx(), &w, LayerOptions { f16_weights: true })).unwrap();
        let got = gpu_forward(&layer, &x);
        let want = softmoe::reference::soft_moe_forward(&rounded_to_f16(&w), &x).unwrap();
        let tol = crate::common::f32_tol(d.max(m).max(n * p).max(h), max_abs("y", &want.y));
        crate::common::assert_close(&format!("case {i}: f16 y against the rounded kernels"), &got.y, &want.y, tol);
        // And f16 is really in use: the output is far closer to the rounded kernels' reference
        // than to the f32 kernels'.
        let exact = softmoe::reference::soft_moe_forward(&w, &x).unwrap();
        let (to_rounded, to_exact) = (max_abs_diff("f16 y", &got.y, &want.y), max_abs_diff("f16 y", &got.y, &exact.y));
        assert!(to_exact > 10.0 * to_rounded, "case {i}: f16 storage changed nothing ({to_exact:e} vs {to_rounded:e})");
    }
}

#[test]
fn a_whole_vit_runs_with_f16_experts() {
    use softmoe::model::Vit;
    use softmoe::weights::BlockMlp;
    let mut c = crate::common::vit_config(28, 1, 4, 32, 4, 4, &[2, 3], 4, 2);
    c.expert_mlp_dim = 64; // f16 needs d and h multiples of 4
    let mut rng = Rng::new(630);
    let w = softmoe::random::random_vit(&mut rng, &c);
    let mut rounded = w.clone();
    for block in &mut rounded.blocks {
        if let BlockMlp::SoftMoe(l) = &mut block.mlp {
            *l = rounded_to_f16(l);
        }
    }
    let px: Vec<f32> = rng.vec(6 * 784, 0.5).into_iter().map(|v| v + 0.5).collect();
    let x = Tensor::new(vec![6, 28, 28], px).unwrap();
    let vit = pollster::block_on(Vit::with_options(ctx(), &w, LayerOptions { f16_weights: true })).unwrap();
    let got = pollster::block_on(vit.classify(&x)).unwrap();
    let want = softmoe::reference::vit_forward(&rounded, &x).unwrap();
    // As tests/gpu/vit_model.rs: one f32 bound per block, against the rounded weights.
    let tol = 5.0 * crate::common::f32_tol(65, max_abs("logits", &want.logits).max(1.0));
    crate::common::assert_close("f16 ViT logits against the rounded kernels", &got.logits.data, &want.logits, tol);
    let exact = softmoe::reference::vit_forward(&w, &x).unwrap();
    assert!(max_abs_diff("f16 ViT against f32 weights", &got.logits.data, &exact.logits) > 1e-4, "f16 storage changed no logit");
    // Batch invariance survives the storage change.
    let last = Tensor::new(vec![1, 28, 28], x.data[5 * 784..].to_vec()).unwrap();
    assert_eq!(pollster::block_on(vit.classify(&last)).unwrap().logits.data, got.logits.data[50..], "image 5 alone and in the batch");
}

#[test]
fn f16_weights_are_refused_on_a_device_without_shader_f16() {
    use softmoe::{GpuContext, GpuOptions};
    let plain = pollster::block_on(GpuContext::with_options(GpuOptions { no_shader_f16: true, ..Default::default() })).unwrap();
    assert!(!plain.features.contains(wgpu::Features::SHADER_F16));
    let w = random_layer(&mut Rng::new(640), 8, 2, 2, 8, 1.0, Gelu::Tanh, true);
    let err = pollster::block_on(SoftMoe::with_options(plain.clone(), &w, LayerOptions { f16_weights: true })).err().expect("refused");
    assert!(
        matches!(err, softmoe::Error::MissingFeature { feature: "shader-f16", .. }) && err.to_string().contains("`shader-f16`"),
        "{err}"
    );
    let mut c = crate::common::vit_config(8, 1, 4, 8, 2, 2, &[1], 2, 2);
    c.expert_mlp_dim = 8;
    let vit = softmoe::random::random_vit(&mut Rng::new(641), &c);
    let err = pollster::block_on(softmoe::model::Vit::with_options(plain.clone(), &vit, LayerOptions { f16_weights: true }))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("`shader-f16`"), "{err}");
    // f32 weights still run there.
    assert!(pollster::block_on(SoftMoe::new(plain, &w)).is_ok());
}
