//! The values the browser trainer takes and returns, with their TypeScript types (tsify), as
//! `types.rs` does for the model.

use serde::{Deserialize, Serialize};
use tsify::Tsify;

/// What the wasm trainer takes besides the config and weights (the npm package's `createTrainer`
/// checks and fills it in). The defaults are `softmoe train`'s (the candle trainer's recipe).
#[derive(Clone, Debug, Deserialize, Tsify)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WasmTrainOptions {
    /// Seed of the initialisation when training from scratch (default 42).
    #[serde(default = "seed")]
    #[tsify(optional)]
    pub seed: u64,
    /// The peak learning rate (default 4e-3).
    #[serde(default = "lr")]
    #[tsify(optional)]
    pub lr: f64,
    /// Steps of the warm-up + cosine schedule; without it every step runs at `lr` unless it names its own.
    #[serde(default)]
    #[tsify(optional)]
    pub total_steps: Option<usize>,
    /// Linear warm-up steps (default: a 48th of `totalSteps`, the recipe's half epoch of 24).
    #[serde(default)]
    #[tsify(optional)]
    pub warmup_steps: Option<usize>,
    /// AdamW's decoupled weight decay (default 0.05).
    #[serde(default = "weight_decay")]
    #[tsify(optional)]
    pub weight_decay: f64,
    /// Label smoothing ε of the loss (default 0.1).
    #[serde(default = "label_smoothing")]
    #[tsify(optional)]
    pub label_smoothing: f32,
    /// Clip the gradients' global norm to this (default 0: no clipping).
    #[serde(default)]
    #[tsify(optional)]
    pub clip_norm: f32,
    /// Accept a weights file holding tensors the config does not use.
    #[serde(default)]
    #[tsify(optional)]
    pub allow_unused: bool,
}

fn seed() -> u64 {
    42
}
fn lr() -> f64 {
    4e-3
}
fn weight_decay() -> f64 {
    0.05
}
fn label_smoothing() -> f32 {
    0.1
}

impl WasmTrainOptions {
    /// The JS names of the fields.
    pub const KEYS: [&'static str; 8] =
        ["seed", "lr", "totalSteps", "warmupSteps", "weightDecay", "labelSmoothing", "clipNorm", "allowUnused"];
}

/// What one training step reports.
#[derive(Serialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct StepResult {
    /// The batch's mean loss (label-smoothed cross-entropy), before the update.
    pub loss: f64,
    /// Examples of the batch the model got right, before the update.
    pub correct: u32,
    pub batch: u32,
    /// Steps taken so far, this one included.
    pub step: u32,
    /// The learning rate this step ran at.
    pub lr: f64,
    /// The gradients' global norm before clipping.
    pub grad_norm: f32,
    /// Milliseconds the step took on the device, readback included.
    pub ms: f64,
}

/// The model's score on labelled images.
#[derive(Serialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct EvalResult {
    /// Fraction of the images whose largest logit is their label.
    pub accuracy: f64,
    /// Mean cross-entropy of the labels (no smoothing).
    pub loss: f64,
    pub count: u32,
    pub ms: f64,
}

/// The schedule a trainer runs.
#[derive(Serialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct TrainSchedule {
    pub peak_lr: f64,
    /// Null: a constant `peakLr` (or each step's own).
    pub total_steps: Option<u32>,
    pub warmup_steps: u32,
}
