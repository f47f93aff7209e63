//! One training step of the Soft MoE ViT on the GPU (`softmoe::train::Trainer`) against this
//! trainer's candle step on the same weights and batch: the same initial weights for a seed, every
//! gradient, and the weights after AdamW, over two steps.

use crate::model::{self, Moe, Weights};
use crate::step::smoothed_cross_entropy;
use candle_core::{Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use softmoe::train::init::init_weights;
use softmoe::train::{TrainOptions, Trainer};
use softmoe::weights::params::ParamLayout;
use softmoe::weights::safetensors::serialize;
use softmoe::{SafeTensors, VitWeights};
use std::collections::BTreeMap;

/// Candle tensors under SPEC names (weights or their gradients) in softmoe's `ParamLayout` order,
/// through the library's loader (q, k, v fused, LayerNorms packed).
fn to_layout(cfg: &model::Config, named: &BTreeMap<String, Tensor>) -> Vec<Vec<f32>> {
    let tensors: Vec<(String, softmoe::Tensor)> = named
        .iter()
        .map(|(k, t)| (k.clone(), softmoe::Tensor { shape: t.dims().to_vec(), data: t.flatten_all().unwrap().to_vec1::<f32>().unwrap() }))
        .collect();
    let refs: Vec<(&str, &softmoe::Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let st = SafeTensors::parse(serialize(&refs, &Default::default()), "candle").unwrap();
    VitWeights::from_parts(cfg.clone(), &st).unwrap().to_params().unwrap()
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0.0f32, |a, x| a.max(x.abs()))
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn a_gpu_training_step_matches_the_candle_step() {
    let cfg = model::config(64, 4, 4, 128, 8, 2, Moe::Soft);
    let dev = Device::Cpu;
    let seed = 42;
    let vars = model::init_params(&cfg, seed, &dev).unwrap();
    // The library initialises as the trainer does, bit for bit.
    let w0 = init_weights(&cfg, seed).unwrap();
    let candle_init: BTreeMap<String, Tensor> = vars.iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
    assert_eq!(to_layout(&cfg, &candle_init), w0.to_params().unwrap(), "initial weights");
    // The zero head stops every gradient below it at initialisation: a random head in both.
    let head: Vec<f32> = softmoe::random::Rng::new(5).vec(64 * 10, 0.3);
    vars["head/kernel"].set(&Tensor::from_vec(head.clone(), (64, 10), &dev).unwrap()).unwrap();
    let w0 = VitWeights { head_kernel: head, ..w0 };

    let (lr, wd, smoothing) = (2e-3, 0.05, 0.1);
    let (decay, no_decay): (Vec<_>, Vec<_>) = vars.iter().partition(|(k, _)| k.ends_with("/kernel") && !k.contains("Router"));
    let mk = |vs: Vec<(&String, &Var)>, wd: f64| {
        AdamW::new(
            vs.into_iter().map(|(_, v)| v.clone()).collect(),
            ParamsAdamW { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: wd },
        )
        .unwrap()
    };
    let (mut opt_d, mut opt_n) = (mk(decay, wd), mk(no_decay, 0.0));
    let ctx = softmoe::testing::shared_context();
    let mut gpu =
        pollster::block_on(Trainer::new(ctx, &w0, TrainOptions { label_smoothing: smoothing as f32, ..Default::default() })).unwrap();
    let layout = ParamLayout::new(&cfg).unwrap();
    let mut rng = softmoe::random::Rng::new(11);
    let b = 16;
    // Values whose two gradients differ by more than 1 % of candle's, i.e. whose gradient is mostly
    // f32 round-off (the key bias's above all: its exact gradient is 0, as softmax ignores a shift
    // of all scores): Adam turns that noise into steps of ±lr that differ between any two
    // implementations. Counted and bounded apart.
    let mut noisy: Vec<Vec<bool>> = layout.specs.iter().map(|s| vec![false; s.len]).collect();
    for step in 1..=2 {
        let images: Vec<f32> = rng.vec(b * 784, 0.5).into_iter().map(|v| v + 0.5).collect();
        let labels: Vec<u32> = (0..b).map(|_| rng.range(0, 9) as u32).collect();
        // Candle: the trainer's loss and backward (one shard), then its two AdamW groups.
        let w = Weights::from_vars(&vars);
        let x = Tensor::from_slice(&images, (b, 28, 28), &dev).unwrap();
        let y = Tensor::from_slice(&labels, b, &dev).unwrap();
        let (logits, _) = model::forward_with_aux(&x, &w, &cfg, None).unwrap();
        let loss = smoothed_cross_entropy(&logits, &y, smoothing).unwrap();
        let grads = loss.backward().unwrap();
        let named: BTreeMap<String, Tensor> = vars.iter().map(|(k, v)| (k.clone(), grads.get(v.as_tensor()).unwrap().clone())).collect();
        let want = to_layout(&cfg, &named);
        // The GPU: the same batch's gradients, then the step.
        let (gpu_loss, got) = pollster::block_on(gpu.gradients(&images, &labels)).unwrap();
        let candle_loss = loss.to_scalar::<f32>().unwrap() as f64;
        assert!((gpu_loss - candle_loss).abs() < 2e-6, "step {step}: loss {gpu_loss} against candle's {candle_loss}");
        let mut worst_g = 0.0f32;
        for (i, (spec, (g, c))) in layout.specs.iter().zip(got.iter().zip(&want)).enumerate() {
            let big = max_abs(c);
            noisy[i].iter_mut().zip(g.iter().zip(c)).for_each(|(n, (a, b))| *n |= (a - b).abs() > 1e-2 * b.abs());
            let rel = max_diff(g, c) / big.max(1e-6);
            worst_g = worst_g.max(rel);
            assert!(rel < 1e-4, "step {step}: d {}: differs by {rel:.2e} of its largest value", spec.name);
        }
        let out = pollster::block_on(gpu.step(&images, &labels, lr)).unwrap();
        assert!((out.loss - candle_loss).abs() < 2e-6);
        opt_d.step(&grads).unwrap();
        opt_n.step(&grads).unwrap();
        let after: BTreeMap<String, Tensor> = vars.iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
        let want = to_layout(&cfg, &after);
        let got = pollster::block_on(gpu.params()).unwrap();
        let (mut worst_w, mut worst_noisy, mut n_noisy) = (0.0f32, 0.0f32, 0);
        for (i, (spec, (g, c))) in layout.specs.iter().zip(got.iter().zip(&want)).enumerate() {
            for (j, (a, b)) in g.iter().zip(c).enumerate() {
                let d = (a - b).abs();
                if noisy[i][j] {
                    n_noisy += 1;
                    worst_noisy = worst_noisy.max(d);
                    // At most two steps of lr (and the decay) in opposite directions.
                    assert!(d <= 4.1 * lr as f32, "step {step}: {}[{j}] (noise-level gradient) differs by {d:.2e}", spec.name);
                } else {
                    worst_w = worst_w.max(d);
                    assert!(d < 1e-2 * lr as f32, "step {step}: {}[{j}] after the update differs by {d:.2e}", spec.name);
                }
            }
        }
        eprintln!(
            "step {step}: loss {gpu_loss:.6} (candle {candle_loss:.6}); gradients within {worst_g:.2e} of each tensor's largest; \
             weights within {worst_w:.2e} (lr {lr}), {n_noisy} of {} with noise-level gradients within {worst_noisy:.2e}",
            layout.count()
        );
    }
}
