//! The whole ViT on the GPU against the f64 reference, and batch invariance bit for bit.

use softmoe::model::{Vit, VitConfig};
use softmoe::random::random_vit;
use softmoe::Tensor;

use crate::common::{assert_close, ctx, f32_tol, max_abs, max_abs_diff, to_f64, vit_config, Rng};

fn images(rng: &mut Rng, b: usize, c: &VitConfig) -> Tensor {
    let n = c.image_size * c.image_size * c.channels;
    let data = rng.vec(b * n, 0.5).into_iter().map(|v| v + 0.5).collect();
    Tensor::new(vec![b, c.image_size, c.image_size, c.channels], data).unwrap()
}

#[test]
fn random_models_match_the_reference_with_maps() {
    let configs = [
        vit_config(28, 1, 4, 32, 4, 4, &[2, 3], 4, 2),
        vit_config(12, 3, 3, 15, 2, 3, &[1], 3, 3),
        vit_config(10, 1, 5, 8, 3, 2, &[], 1, 1),
        vit_config(8, 2, 2, 12, 2, 1, &[0, 1], 7, 1),
    ];
    for (i, c) in configs.iter().enumerate() {
        let mut rng = Rng::new(200 + i as u64);
        let w = random_vit(&mut rng, c);
        let vit = pollster::block_on(Vit::new(ctx(), &w)).unwrap();
        let x = images(&mut rng, 3, c);
        let got = pollster::block_on(vit.classify_with_maps(&x)).unwrap();
        let want = softmoe::reference::vit_forward(&w, &x).unwrap();
        // f32 round-off compounds block by block through the residual stream: one f32 bound per
        // block (longest reduction: the MLP's hidden size), on the logits' size.
        let k = c.mlp_dim.max(c.expert_mlp_dim).max(c.tokens()).max(c.hidden_size);
        let tol = (c.num_layers + 1) as f64 * f32_tol(k, max_abs("logits", &want.logits).max(1.0));
        assert_close(&format!("config {i} logits"), &to_f64(&got.logits.data), &want.logits, tol);
        assert_eq!(got.maps.len(), want.maps.len(), "config {i}: one map per Soft MoE block");
        for (g, (block, d, cm)) in got.maps.iter().zip(&want.maps) {
            assert_eq!(g.block, *block);
            // The block's input carries the blocks before it; the weights are at most 1.
            let tol = (block + 1) as f64 * f32_tol(k, 1.0);
            assert_close(&format!("config {i} block {block} dispatch"), &to_f64(&g.dispatch.data), d, tol);
            assert_close(&format!("config {i} block {block} combine"), &to_f64(&g.combine.data), cm, tol);
        }
        // Probabilities are a softmax of the logits, and the prediction is their argmax.
        for (row, &k) in got.probs.data.chunks(10).zip(&got.predictions) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            assert!(row.iter().all(|&p| p <= row[k]));
        }
    }
}

#[test]
fn an_image_is_bit_identical_alone_and_anywhere_in_a_batch() {
    let c = vit_config(28, 1, 4, 32, 4, 4, &[2, 3], 4, 2);
    let mut rng = Rng::new(300);
    let w = random_vit(&mut rng, &c);
    let vit = pollster::block_on(Vit::new(ctx(), &w)).unwrap();
    let batch = images(&mut rng, 64, &c);
    let all = pollster::block_on(vit.classify_with_maps(&batch)).unwrap();
    let per = 28 * 28;
    for i in [0, 13, 63] {
        let one = Tensor::new(vec![1, 28, 28, 1], batch.data[i * per..(i + 1) * per].to_vec()).unwrap();
        let alone = pollster::block_on(vit.classify_with_maps(&one)).unwrap();
        assert_eq!(alone.logits.data, all.logits.data[i * 10..(i + 1) * 10], "image {i}: logits differ");
        let s = 49 * 8;
        assert_eq!(alone.maps[1].combine.data, all.maps[1].combine.data[i * s..(i + 1) * s], "image {i}: combine differs");
    }
    // Without maps the same logits (the maps are only read back, never change the computation).
    let plain = pollster::block_on(vit.classify(&batch)).unwrap();
    assert_eq!(plain.logits.data, all.logits.data);
}

#[test]
fn the_classifier_returns_the_same_layout_on_both_paths() {
    use softmoe::model::Classifier;
    let mut c = vit_config(28, 1, 4, 16, 2, 2, &[1], 3, 2);
    c.class_names = (0..10).map(|i| format!("class {i}")).collect();
    let w = random_vit(&mut Rng::new(230), &c);
    let x = images(&mut Rng::new(231), 3, &c);
    let gpu = Classifier::Gpu(pollster::block_on(Vit::new(ctx(), &w)).unwrap());
    let cpu = Classifier::Cpu(w);
    assert_eq!((gpu.backend(), cpu.backend()), ("webgpu", "cpu"));
    let (g, r) = (pollster::block_on(gpu.classify(&x, true)).unwrap(), pollster::block_on(cpu.classify(&x, true)).unwrap());
    let tol = (c.num_layers + 1) as f64 * f32_tol(c.mlp_dim.max(c.tokens()), max_abs("logits", &r.logits).max(1.0));
    assert_close("classifier logits, GPU against f64", &g.logits, &r.logits, tol);
    assert_close("classifier probabilities, GPU against f64", &g.probs, &r.probs, tol);
    assert_eq!(g.predictions, r.predictions);
    assert_eq!(g.maps.len(), 1);
    for (a, b) in g.maps.iter().zip(&r.maps) {
        assert_eq!((a.block, &a.dispatch.shape, &a.combine.shape), (b.block, &b.dispatch.shape, &b.combine.shape));
        assert_close("classifier dispatch", &a.dispatch.data, &b.dispatch.data, 2.0 * f32_tol(c.tokens(), 1.0));
    }
    // Without maps neither path returns them.
    let plain = pollster::block_on(cpu.classify(&x, false)).unwrap();
    assert!(plain.maps.is_empty() && plain.routes.is_empty() && plain.logits == r.logits);
}

#[test]
fn qk_norm_models_match_the_reference_and_are_batch_invariant() {
    for (i, (moe, names)) in [(vec![1], softmoe::BlockNames::Vmoe), (vec![], softmoe::BlockNames::Vit)].into_iter().enumerate() {
        let mut c = vit_config(12, 1, 3, 15, 2, 3, &moe, 3, 2);
        c.attention_qk_norm = true;
        let mut rng = Rng::new(240 + i as u64);
        let w = softmoe::VitWeights { names, ..random_vit(&mut rng, &c) };
        let vit = pollster::block_on(Vit::new(ctx(), &w)).unwrap();
        let x = images(&mut rng, 5, &c);
        let got = pollster::block_on(vit.classify_with_maps(&x)).unwrap();
        let want = softmoe::reference::vit_forward(&w, &x).unwrap();
        let k = c.mlp_dim.max(c.expert_mlp_dim).max(c.tokens()).max(c.hidden_size);
        let tol = (c.num_layers + 1) as f64 * f32_tol(k, max_abs("logits", &want.logits).max(1.0));
        assert_close(&format!("qk-norm model {i} logits"), &to_f64(&got.logits.data), &want.logits, tol);
        let per = c.image_size * c.image_size;
        for j in [0, 3] {
            let one = Tensor::new(vec![1, c.image_size, c.image_size, 1], x.data[j * per..(j + 1) * per].to_vec()).unwrap();
            let alone = pollster::block_on(vit.classify(&one)).unwrap();
            assert_eq!(alone.logits.data, got.logits.data[j * 10..(j + 1) * 10], "qk-norm model {i} image {j}: logits differ alone");
        }
    }
}

/// The classifier variants (vmoe's `classifier` × `attention_qk_norm`) on Soft MoE, sparse and dense
/// models: (name, config).
pub fn variant_configs() -> Vec<(String, VitConfig)> {
    use softmoe::{Pooling, Router};
    let mut out = Vec::new();
    for classifier in [Pooling::Token, Pooling::Map] {
        for qk in [false, true] {
            for kind in ["soft", "sparse", "dense"] {
                let moe: &[usize] = if kind == "dense" { &[] } else { &[1] };
                // 12×12 images in 3×3 patches: 16 patches (17 tokens with the class token), d = 15
                // of 3 heads of 5: nothing divides the workgroup.
                let mut c = vit_config(12, 1, 3, 15, 2, 3, moe, 3, if kind == "sparse" { 0 } else { 2 });
                if kind == "sparse" {
                    c.router = Some(Router::tokens_choice(2, 1.0));
                    c.group_size = 2;
                }
                c.classifier = classifier;
                c.attention_qk_norm = qk;
                out.push((format!("{kind} {} qk-norm {qk}", classifier.name()), c));
            }
        }
    }
    out
}

#[test]
fn token_and_map_classifiers_match_the_reference() {
    for (i, (name, c)) in variant_configs().into_iter().enumerate() {
        let mut rng = Rng::new(260 + i as u64);
        let w = random_vit(&mut rng, &c);
        let vit = pollster::block_on(Vit::new(ctx(), &w)).unwrap();
        let x = images(&mut rng, 4, &c);
        let got = pollster::block_on(vit.classify_with_maps(&x)).unwrap();
        let want = softmoe::reference::vit_forward(&w, &x).unwrap();
        // One f32 bound per block and one for the MAP head.
        let k = c.mlp_dim.max(c.expert_mlp_dim).max(c.seq_len()).max(c.hidden_size);
        let tol = (c.num_layers + 2) as f64 * f32_tol(k, max_abs("logits", &want.logits).max(1.0));
        assert_close(&format!("{name}: logits"), &to_f64(&got.logits.data), &want.logits, tol);
        for (g, (block, d, _)) in got.maps.iter().zip(&want.maps) {
            assert_eq!(g.dispatch.shape, vec![4, c.seq_len(), c.num_experts, c.slots_per_expert], "{name}: maps cover every token");
            assert_close(&format!("{name}: block {block} dispatch"), &to_f64(&g.dispatch.data), d, (block + 1) as f64 * f32_tol(k, 1.0));
        }
        if let Some(r) = want.routes.first() {
            let slots: Vec<Option<u32>> = r.1.slots.iter().map(|s| s.map(|v| v as u32)).collect();
            assert_eq!(got.routes[0].slots, slots, "{name}: routing");
        }
    }
}

#[test]
fn the_class_token_and_the_probe_reach_the_logits() {
    // Without its class token or probe a model is something else: the tests above would not see a
    // loader or a forward that dropped them.
    use softmoe::Pooling;
    for classifier in [Pooling::Token, Pooling::Map] {
        let mut c = vit_config(12, 1, 3, 15, 2, 3, &[1], 3, 2);
        c.classifier = classifier;
        let w = random_vit(&mut Rng::new(280), &c);
        let x = images(&mut Rng::new(281), 2, &c);
        let vit = pollster::block_on(Vit::new(ctx(), &w)).unwrap();
        let base = pollster::block_on(vit.classify(&x)).unwrap().logits.data;
        let mut other = w.clone();
        match classifier {
            // Not a constant shift: every LayerNorm would take that out again.
            Pooling::Token => {
                other.cls.as_mut().unwrap().iter_mut().enumerate().for_each(|(i, v)| *v += if i % 2 == 0 { 0.5 } else { -0.5 })
            }
            _ => other.map_head.as_mut().unwrap().probe.iter_mut().for_each(|v| *v = -*v),
        }
        let moved = pollster::block_on(pollster::block_on(Vit::new(ctx(), &other)).unwrap().classify(&x)).unwrap().logits.data;
        let diff = max_abs_diff("logits", &moved, &base);
        assert!(diff > 1e-3, "{classifier:?}: changing it moved the logits by {diff:e} only");
    }
}
