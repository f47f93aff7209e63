//! The shipped models (weights/): the WebGPU forward against the candle model that trained them, on
//! the 64 shipped samples; batch invariance of the Soft MoE and dense models on those samples, and
//! the batch effect of the sparse ones.

use std::path::Path;

use softmoe::model::Vit;
use softmoe::weights::VitWeights;
use softmoe::{GpuContext, SafeTensors, Tensor};

/// Models whose outputs never depend on the rest of the batch.
const MODELS: [&str; 2] = ["soft-moe-vit", "dense-vit"];
/// The sparse baselines: groups of 8 images compete for the experts' capacity.
const SPARSE: [&str; 2] = ["tokens-choice-vit", "experts-choice-vit"];

/// WebGPU f32 against candle's f32 on the same weights. Logits reach |10|; two f32 implementations
/// that sum in different orders differ by a few ε·√K·|value| per GEMM (K ≤ 128), compounded over
/// four blocks and their LayerNorms: ~2e-6 expected, 3.6e-6 measured (worst of 4 × 64 images, on
/// lavapipe); 3e-5 keeps ~8× headroom.
const LOGIT_TOL: f64 = 3e-5;

fn weights_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/weights"))
}

fn samples() -> (Tensor, Vec<usize>) {
    let st = SafeTensors::read(weights_dir().join("samples.safetensors")).expect("weights/samples.safetensors is shipped");
    let images = st.tensor_f32("images").unwrap();
    let labels = st.tensor_f32("labels").unwrap().data.iter().map(|&l| l as usize).collect();
    assert_eq!(images.shape, vec![64, 28, 28]);
    (images, labels)
}

fn ctx() -> std::sync::Arc<GpuContext> {
    match pollster::block_on(GpuContext::new()) {
        Ok(c) => c,
        Err(e) => panic!("GPU tests need a wgpu adapter (CI installs mesa-vulkan-drivers): {e}"),
    }
}

fn load(ctx: &std::sync::Arc<GpuContext>, name: &str) -> Vit {
    let w = VitWeights::load(weights_dir().join(name)).unwrap();
    pollster::block_on(Vit::new(ctx.clone(), &w)).unwrap()
}

/// Sample i's logits classified alone, a batch of one.
fn logits_alone(vit: &Vit, images: &Tensor, i: usize) -> Vec<f32> {
    let one = Tensor::new(vec![1, 28, 28], images.data[i * 784..(i + 1) * 784].to_vec()).unwrap();
    pollster::block_on(vit.classify(&one)).unwrap().logits.data
}

#[test]
fn gpu_logits_match_candle_on_all_samples() {
    let (images, labels) = samples();
    let ctx = ctx();
    // The 64 samples are 8 whole routing groups, as the trainer grouped them for its logits.
    for name in MODELS.iter().chain(&SPARSE) {
        let candle = SafeTensors::read(weights_dir().join(name).join("sample_logits.safetensors")).unwrap().tensor_f32("logits").unwrap();
        assert_eq!(candle.shape, vec![64, 10]);
        let vit = load(&ctx, name);
        let out = pollster::block_on(vit.classify(&images)).unwrap();
        let diff = softmoe::compare::max_abs_diff(&out.logits.data, &candle.data).unwrap_or_else(|e| panic!("{name} logits: {e}"));
        diff.within(&format!("{name}: logits against candle's"), LOGIT_TOL).unwrap_or_else(|e| panic!("{e}"));
        let err = diff.max;
        let candle_pred: Vec<usize> = candle.data.chunks(10).map(softmoe::model::argmax).collect();
        assert_eq!(out.predictions, candle_pred, "{name}: a predicted class differs from candle's");
        let correct = out.predictions.iter().zip(&labels).filter(|(p, l)| p == l).count();
        eprintln!("{name}: max |logit − candle| {err:.2e}; {correct}/64 samples correct");
    }
}

#[test]
fn each_sample_is_bit_identical_alone_and_in_the_batch_of_64() {
    let (images, _) = samples();
    let ctx = ctx();
    for name in MODELS {
        let vit = load(&ctx, name);
        let all = pollster::block_on(vit.classify(&images)).unwrap();
        for i in 0..64 {
            assert_eq!(
                logits_alone(&vit, &images, i),
                all.logits.data[i * 10..(i + 1) * 10],
                "{name}: sample {i} differs alone and in the batch"
            );
        }
    }
}

#[test]
fn sparse_models_change_their_output_with_the_batch() {
    let (images, _) = samples();
    let ctx = ctx();
    for name in SPARSE {
        let vit = load(&ctx, name);
        let all = pollster::block_on(vit.classify(&images)).unwrap();
        let changed = (0..16).filter(|&i| logits_alone(&vit, &images, i) != all.logits.data[i * 10..(i + 1) * 10]).count();
        eprintln!("{name}: {changed} of 16 samples change alone against in the batch of 64");
        // Alone, an image is a group of its own: its tokens compete only among themselves.
        assert!(changed > 0, "{name}: no sample's output depends on its batch");
    }
}

/// GEMM FLOPs of one image counted from the shipped tensors' shapes, independently of
/// `softmoe::flops`: 2·rows·in·out per kernel (rows: the 49 tokens; one pooled row for the head;
/// each expert's slots, or its share of the group's capacity buffer), plus the products without
/// weights (attention's QKᵀ and AV, Soft MoE's DᵀX and CỸ).
fn gemm_flops_from_tensors(dir: &Path) -> u64 {
    let w = VitWeights::load(dir).unwrap();
    let c = &w.config;
    let st = SafeTensors::read(dir.join("model.safetensors")).unwrap();
    let m = c.tokens() as f64;
    let per_expert_rows = match &c.router {
        None => c.slots_per_expert as f64,
        Some(r) => r.capacity(c.group_size * c.tokens(), c.num_experts) as f64 / c.group_size as f64,
    };
    let mut total = 0.0f64;
    for e in st.entries() {
        let s: Vec<f64> = e.shape.iter().map(|&v| v as f64).collect();
        let name = e.name.as_str();
        total += 2.0
            * if name == "embedding/kernel" {
                m * s[..s.len() - 1].iter().product::<f64>() * s[s.len() - 1]
            } else if name == "head/kernel" {
                s[0] * s[1]
            } else if name.ends_with("Moe/Router/mu") {
                m * s[0] * s[1] * s[2] + 2.0 * m * s[1] * s[2] * s[0] // logits, then DᵀX and CỸ
            } else if name.contains("Moe/Mlp/Dense_") && name.ends_with("/kernel") {
                s[0] * per_expert_rows * s[1] * s[2]
            } else if name.ends_with("/kernel") && s.len() == 3 {
                m * s[0] * s[1] * s[2] // query, key, value [d, heads, d/heads]; out [heads, d/heads, d]
            } else if name.ends_with("/kernel") {
                m * s[0] * s[1] // dense MLP, sparse router
            } else {
                0.0
            };
    }
    let attention = 4.0 * m * m * c.hidden_size as f64 * c.num_layers as f64;
    (total + attention) as u64
}

#[test]
fn the_readme_flop_figures_are_the_gemm_flops_of_the_shipped_tensors() {
    for (name, readme_millions) in [("soft-moe-vit", 13.8), ("dense-vit", 15.4), ("tokens-choice-vit", 15.5), ("experts-choice-vit", 15.5)]
    {
        let dir = weights_dir().join(name);
        let gemm = gemm_flops_from_tensors(&dir);
        let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
        let recorded = config["training"]["flops_per_image"].as_u64().expect("config.json records training.flops_per_image");
        assert_eq!(recorded, gemm, "{name}: config.json's flops_per_image against the GEMMs of its tensors");
        let config = VitWeights::load(&dir).unwrap().config;
        assert_eq!(softmoe::flops::vit_gemm_flops_per_image(&config), gemm, "{name}: softmoe::flops' GEMM count");
        assert_eq!((gemm as f64 / 1e5).round() / 10.0, readme_millions, "{name}: README figure");
        // softmoe::flops adds the element-wise work (LayerNorm, softmaxes, GELU, biases) on top.
        let all = softmoe::flops::vit_flops_per_image(&VitWeights::load(&dir).unwrap().config);
        let extra = all as f64 / gemm as f64 - 1.0;
        eprintln!("{name}: {gemm} GEMM FLOPs per image; softmoe::flops counts {all} (+{:.1}% element-wise)", 100.0 * extra);
        assert!(extra > 0.0 && extra < 0.05, "{name}: element-wise share {extra}");
    }
}

/// The adapter the logits in tests/fixtures/shipped_logits/ were recorded on (`softmoe classify
/// --images weights/samples.safetensors --json`, re-recorded when the GEMMs moved to the chunked
/// canonical summation order: every logit moved by at most 2.9e-6, no class changed).
const RECORDED_ON: &str = "llvmpipe";

#[test]
fn logits_are_bit_identical_to_the_recorded_ones() {
    let (images, _) = samples();
    let ctx = ctx();
    // Other adapters round differently (fused multiply-adds, their own exp): there the recorded
    // logits are checked within the f32 tolerance against candle's only.
    let exact = ctx.info.name.contains(RECORDED_ON);
    for name in MODELS.iter().chain(&SPARSE) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/shipped_logits/{name}.jsonl"));
        let recorded: Vec<f32> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .flat_map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                // Printed as the shortest text of each f32, so reading it back gives the same bits.
                v["logits"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(recorded.len(), 640, "{name}: recorded logits");
        let out = pollster::block_on(load(&ctx, name).classify(&images)).unwrap();
        if exact {
            let first = (0..640).find(|&i| out.logits.data[i].to_bits() != recorded[i].to_bits());
            assert!(
                first.is_none(),
                "{name}: logit {} is {} now, {} when recorded",
                first.unwrap_or(0),
                out.logits.data[first.unwrap_or(0)],
                recorded[first.unwrap_or(0)]
            );
        } else {
            let d = softmoe::compare::max_abs_diff(&out.logits.data, &recorded).unwrap_or_else(|e| panic!("{name}: {e}"));
            d.within(&format!("{name}: logits against the recorded ones"), LOGIT_TOL).unwrap_or_else(|e| panic!("{e}"));
            eprintln!("{name}: adapter {} is not {RECORDED_ON}: bits not compared", ctx.info.name);
        }
    }
}
