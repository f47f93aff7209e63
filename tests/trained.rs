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
        let err = out.logits.data.iter().zip(&candle.data).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(err <= 1e-4, "{name}: logits differ from candle's by {err}");
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
