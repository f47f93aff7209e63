//! soft-moe-pytorch 0.1.9's `SoftMoE` run by PyTorch (tests/fixtures/vmoe/soft_moe_pytorch, written
//! by tools/vmoe_fixtures.py; its README states what the layer computes): the state_dict converted by
//! `weights::convert::soft_moe_pytorch_layer`, what `softmoe convert --from soft-moe-pytorch` runs,
//! matches PyTorch's output within 1e-5 (issue 14) on the GPU and on the f64 path, and PyTorch's
//! intermediates (the RMSNorm-ed tokens, the experts' inputs and outputs) too. Random layers of the
//! variant at odd shapes against the f64 reference, and batch invariance; ViTs with such blocks
//! (`moe_variant`) likewise.

use std::path::PathBuf;

use softmoe::kernels::rms_norm;
use softmoe::model::{Vit, VitConfig};
use softmoe::random::random_vit;
use softmoe::reference::{self as r, soft_moe_forward, vit_forward};
use softmoe::weights::convert::soft_moe_pytorch_layer;
use softmoe::{Gelu, Pooling, SafeTensors, SoftMoe, SoftMoeVariant, SoftMoeWeights, Tensor};

use crate::common::{
    assert_bits, assert_close, ctx, f32_tol, gpu_forward, max_abs, max_abs_diff, random_input, run_and_read, to_f64, upload, vit_config,
    Rng,
};

/// Issue 14's bound against PyTorch's output.
const BOUND: f64 = 1e-5;

fn case() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vmoe/soft_moe_pytorch");
    assert!(dir.join("model.safetensors").exists(), "{}: missing (the fixtures of tools/vmoe_fixtures.py)", dir.display());
    dir
}

/// Example e's rows of a [B, rows, width] tensor's data.
fn example(v: &[f32], e: usize, len: usize) -> Vec<f64> {
    to_f64(&v[e * len..(e + 1) * len])
}

#[test]
fn a_converted_soft_moe_pytorch_layer_matches_pytorch_and_its_intermediates() {
    let dir = case();
    let w = soft_moe_pytorch_layer(&SafeTensors::read(dir.join("model.safetensors")).unwrap()).unwrap();
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["variant"].as_str(), Some(w.variant.name()));
    assert_eq!(config["gelu"].as_str(), Some(w.gelu.name()));
    for (key, v) in [("d", w.d), ("n", w.n), ("p", w.p), ("h", w.h)] {
        assert_eq!(config[key].as_u64(), Some(v as u64), "{key}");
    }
    let io = SafeTensors::read(dir.join("io.safetensors")).unwrap();
    let (x, want) = (io.tensor_f32("x").unwrap(), io.tensor_f32("y").unwrap());
    let (b, m, d, s) = (x.shape[0], x.shape[1], w.d, w.slots());

    let gpu = gpu_forward(&pollster::block_on(SoftMoe::new(ctx(), &w)).unwrap(), &x);
    assert_close("soft-moe-pytorch: GPU y against PyTorch's", &gpu.y, &want.data, BOUND);
    let cpu = soft_moe_forward(&w, &x).unwrap();
    assert_close("soft-moe-pytorch: f64 y against PyTorch's", &cpu.y, &want.data, BOUND);
    assert_close("soft-moe-pytorch: GPU dispatch against f64", &gpu.dispatch, &cpu.dispatch, 1e-6);
    assert_close("soft-moe-pytorch: GPU combine against f64", &gpu.combine, &cpu.combine, 1e-6);

    // PyTorch's intermediates, per example: x_norm = model.norm(x), the experts' inputs and outputs.
    let [x_norm, slots_in, slots_out] = ["x_norm", "slots_in", "slots_out"].map(|k| io.tensor_f32(k).unwrap());
    assert_eq!(slots_in.shape, [b, w.n, w.p, d]);
    let mu = r::slot_params(&w);
    for e in 0..b {
        let xn = r::router_tokens(&w, &example(&x.data, e, m * d), m);
        assert_close(&format!("example {e}: f64 x_norm"), &xn, &example(&x_norm.data, e, m * d), BOUND);
        let dm = r::dispatch_softmax(&r::logits(&xn, &mu, 1.0, m, d, s), m, s);
        let xs = r::slot_inputs(&dm, &xn, m, s, d);
        assert_close(&format!("example {e}: f64 slot inputs"), &xs, &example(&slots_in.data, e, s * d), BOUND);
        let ys = r::expert_mlp(&example(&slots_in.data, e, s * d), &w);
        assert_close(&format!("example {e}: f64 expert outputs"), &ys, &example(&slots_out.data, e, s * d), BOUND);
    }
    // The GPU's RMSNorm of the tokens, as the layer runs it.
    let (xb, gamma, out) = (upload(&x.data), upload(&w.norm_scale), upload(&vec![0.0; x.data.len()]));
    let got = run_and_read(&[&rms_norm::rows_op(&ctx(), &xb, &gamma, &out, b * m, d).unwrap()], &out, x.data.len());
    assert_close("soft-moe-pytorch: GPU x_norm against PyTorch's", &got, &x_norm.data, BOUND);

    // The bound tells the layers apart: vmoe's layer on the same tensors (scale 1, the gammas
    // dropped) is far from PyTorch's output.
    let vmoe = SoftMoeWeights { variant: SoftMoeVariant::Vmoe, norm_scale: Vec::new(), slot_norm_scale: Vec::new(), ..w.clone() };
    let off = max_abs_diff("vmoe's layer", &soft_moe_forward(&vmoe, &x).unwrap().y, &want.data);
    eprintln!("soft-moe-pytorch: vmoe's layer on the converted tensors is {off:.2e} off");
    assert!(off > 100.0 * BOUND, "{off:e}");
}

/// ε·(1 + L)·(√K + 8)·max(1, ‖y‖∞), tests/gpu/sweep.rs's bound, with the largest |logit| L of `x`
/// (the f64 reference's X'Φ') in place of |scale|: the logits' rounding enters both softmaxes
/// multiplied by their size.
fn tolerance(w: &SoftMoeWeights, x: &Tensor, y: &[f64]) -> f64 {
    let (m, d, s) = (x.shape[1], w.d, w.slots());
    let mu = r::slot_params(w);
    let logit = to_f64(&x.data)
        .chunks(m * d)
        .map(|xe| max_abs("logits", &r::logits(&r::router_tokens(w, xe, m), &mu, 1.0, m, d, s)))
        .fold(0.0, f64::max);
    let k = [d, m, s, w.h].into_iter().max().unwrap() as f64;
    softmoe::testing::EPS * (1.0 + logit) * (k.sqrt() + 8.0) * max_abs("reference y", y).max(1.0)
}

#[test]
fn random_soft_moe_pytorch_layers_match_the_reference_at_odd_shapes() {
    let mut rng = Rng::new(14);
    // n·p a multiple of 4 and not (the vmoe path's fused normalisation is never used here), one
    // token, one slot, widths that do not fill a workgroup.
    for (b, m, d, n, p, h) in
        [(1, 1, 1, 1, 1, 1), (3, 17, 8, 4, 2, 16), (2, 33, 13, 3, 3, 7), (2, 49, 64, 8, 2, 128), (1, 130, 65, 5, 1, 67)]
    {
        let w = softmoe::random::random_pytorch_layer(&mut rng, d, n, p, h);
        let mut x = random_input(&mut rng, b, m, d);
        // A token of norm below 1e-3, where F.normalize's clamp and an eps inside the root differ.
        x.data[..d].iter_mut().for_each(|v| *v *= 1e-4);
        let want = soft_moe_forward(&w, &x).unwrap();
        let got = gpu_forward(&pollster::block_on(SoftMoe::new(ctx(), &w)).unwrap(), &x);
        let what = format!("b={b} m={m} d={d} n={n} p={p} h={h}");
        assert_close(&format!("{what}: y"), &got.y, &want.y, tolerance(&w, &x, &want.y));
        assert_close(&format!("{what}: dispatch"), &got.dispatch, &want.dispatch, tolerance(&w, &x, &[1.0]));
        assert_close(&format!("{what}: combine"), &got.combine, &want.combine, tolerance(&w, &x, &[1.0]));
        assert_eq!(w.gelu, Gelu::Erf);
    }
}

#[test]
fn a_soft_moe_pytorch_example_is_bit_identical_alone_and_in_a_batch() {
    let (m, d) = (23, 12);
    let mut rng = Rng::new(15);
    let w = softmoe::random::random_pytorch_layer(&mut rng, d, 5, 2, 20);
    let layer = pollster::block_on(SoftMoe::new(ctx(), &w)).unwrap();
    let batch = random_input(&mut rng, 9, m, d);
    let target = 6;
    let alone = Tensor::new(vec![1, m, d], batch.data[target * m * d..(target + 1) * m * d].to_vec()).unwrap();
    let (a, all) = (gpu_forward(&layer, &alone), gpu_forward(&layer, &batch));
    assert_bits("y alone against inside a batch of 9", &a.y, &all.y[target * m * d..(target + 1) * m * d]);
    let s = w.slots();
    assert_bits("D alone against inside a batch of 9", &a.dispatch, &all.dispatch[target * m * s..(target + 1) * m * s]);
}

/// A ViT whose Soft MoE blocks are soft-moe-pytorch layers (config.json `moe_variant`), as a
/// PyTorch ViT with its MLPs replaced by `SoftMoE` is: erf GELU, with a class token or pooled.
#[allow(clippy::too_many_arguments)]
fn pytorch_vit(image: usize, patch: usize, d: usize, layers: usize, heads: usize, moe: &[usize], n: usize, p: usize) -> VitConfig {
    VitConfig { moe_variant: SoftMoeVariant::SoftMoePytorch, gelu: Gelu::Erf, ..vit_config(image, 1, patch, d, layers, heads, moe, n, p) }
}

fn vit_images(rng: &mut Rng, b: usize, c: &VitConfig) -> Tensor {
    let n = c.image_size * c.image_size * c.channels;
    Tensor::new(vec![b, c.image_size, c.image_size, c.channels], rng.vec(b * n, 0.5).into_iter().map(|v| v + 0.5).collect()).unwrap()
}

#[test]
fn soft_moe_pytorch_vits_match_the_reference_and_are_batch_invariant() {
    let configs = [
        VitConfig { classifier: Pooling::Token, ..pytorch_vit(28, 7, 16, 3, 2, &[1, 2], 4, 2) },
        pytorch_vit(12, 3, 15, 2, 3, &[0, 1], 3, 3),
    ];
    for (i, c) in configs.iter().enumerate() {
        let mut rng = Rng::new(400 + i as u64);
        let w = random_vit(&mut rng, c);
        let vit = pollster::block_on(Vit::new(ctx(), &w)).unwrap();
        let x = vit_images(&mut rng, 5, c);
        let got = pollster::block_on(vit.classify_with_maps(&x)).unwrap();
        let want = vit_forward(&w, &x).unwrap();
        // tests/gpu/vit_model.rs's bound: one f32 bound per block on the logits' size.
        let k = c.mlp_dim.max(c.expert_mlp_dim).max(c.seq_len()).max(c.hidden_size);
        let tol = (c.num_layers + 1) as f64 * f32_tol(k, max_abs("logits", &want.logits).max(1.0));
        assert_close(&format!("soft-moe-pytorch ViT {i}: logits"), &got.logits.data, &want.logits, tol);
        assert_eq!((got.maps.len(), want.maps.len()), (c.moe_layers.len(), c.moe_layers.len()), "ViT {i}: a map per Soft MoE block");
        for (g, (block, d, cm)) in got.maps.iter().zip(&want.maps) {
            let tol = (block + 1) as f64 * f32_tol(k, 1.0);
            assert_close(&format!("soft-moe-pytorch ViT {i}: block {block} dispatch"), &g.dispatch.data, d, tol);
            assert_close(&format!("soft-moe-pytorch ViT {i}: block {block} combine"), &g.combine.data, cm, tol);
        }
        let per = x.data.len() / 5;
        let one = Tensor::new(vec![1, c.image_size, c.image_size, 1], x.data[3 * per..4 * per].to_vec()).unwrap();
        let alone = pollster::block_on(vit.classify(&one)).unwrap();
        assert_bits(&format!("soft-moe-pytorch ViT {i}: image 3 alone"), &alone.logits.data, &got.logits.data[30..40]);
    }
}
