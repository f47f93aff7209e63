//! Training images/s: softmoe's GPU trainer (`softmoe::train::Trainer`) on the adapter beside the
//! candle trainer (the `trainer` crate's data-parallel step and AdamW) on this machine's CPU, one
//! step of the same config, batch and initial weights each.

use std::collections::BTreeMap;
use std::time::Duration;

use candle_core::{Device, Var};
use candle_nn::Optimizer;
use softmoe::flops::vit_flops_per_image;
use softmoe::model::VitConfig;
use softmoe::random::Rng;
use softmoe::train::init::init_weights;
use softmoe::train::{TrainOptions, Trainer};
use softmoe::GpuContext;
use trainer::model::{self, DropPath, Weights};
use trainer::step::{optimizers, parallel_step, LossWeights};

use crate::timing::median_secs;
use crate::Row;

/// One step at batch `b` of the config at `path` (the shipped Soft MoE ViT's when present).
pub fn training(
    ctx: &std::sync::Arc<GpuContext>,
    quick: bool,
    budget: Duration,
    rows: &mut Vec<Row>,
) -> Result<(), Box<dyn std::error::Error>> {
    let (name, config) = match std::fs::read_to_string("weights/soft-moe-vit/config.json") {
        Ok(text) => ("shipped soft-moe-vit config", VitConfig::from_json(&text, "weights/soft-moe-vit/config.json")?),
        Err(_) => ("the demo's config", VitConfig::from_json(crate::DEMO_CONFIG, "demo config")?),
    };
    // The recipe's batch of 128; 16 in a quick run (a software adapter takes seconds per step).
    let b = if quick { 16 } else { 128 };
    let side = config.image_size;
    let mut rng = Rng::new(11);
    let images: Vec<f32> = rng.vec(b * side * side, 0.5).into_iter().map(|v| v + 0.5).collect();
    let labels: Vec<u32> = (0..b).map(|i| (i * 7 % config.num_classes) as u32).collect();
    // Forward, the input gradients and the weight gradients: three times the forward's GEMM work.
    let flops = 3.0 * vit_flops_per_image(&config) as f64 * b as f64;

    let mut gpu = pollster::block_on(Trainer::new(ctx.clone(), &init_weights(&config, 42)?, TrainOptions::default()))?;
    let gpu_secs = median_secs(budget, 3, || {
        pollster::block_on(gpu.step(&images, &labels, 1e-3)).expect("GPU training step");
    });

    let dev = Device::Cpu;
    let vars: BTreeMap<String, Var> = model::init_params(&config, 42, &dev)?;
    let (mut decay, mut no_decay) = optimizers(&vars, 1e-3, 0.05)?;
    let loss = LossWeights { label_smoothing: 0.1, aux_weight: 0.0 };
    let keep = DropPath::sample(&mut model::Rng::new(1), b, config.num_layers, 0.0);
    let mut cpu_step = || -> Result<(), Box<dyn std::error::Error>> {
        let w = Weights::from_vars(&vars);
        let (grads, _, _) = parallel_step(&w, &config, (&images, &labels), (&keep, false), &vars, loss, &dev)?;
        decay.step(&grads)?;
        no_decay.step(&grads)?;
        Ok(())
    };
    let cpu_secs = median_secs(budget, 3, || cpu_step().expect("candle training step"));
    eprintln!("training b={b}: softmoe GPU {:.1} images/s, candle CPU {:.1} images/s", b as f64 / gpu_secs, b as f64 / cpu_secs);

    for (variant, secs, on_adapter) in [("softmoe Trainer (GPU)", gpu_secs, true), ("candle trainer (CPU)", cpu_secs, false)] {
        rows.push(Row {
            suite: "train",
            case: format!("{name}: one step (forward, backward, AdamW), b={b}"),
            variant: variant.into(),
            secs,
            gflops: flops / secs / 1e9,
            gbs: 0.0,
            on_adapter,
            note: format!("{:.1} images/s; GPU ÷ CPU time {:.2}", b as f64 / secs, gpu_secs / cpu_secs),
        });
    }
    Ok(())
}
