//! Training on the GPU: the same kernels and GEMM engine as inference, with their backward kernels,
//! the loss, global-norm clipping and AdamW (`Trainer`); the candle trainer's initialisation
//! (`init`), learning-rate schedule (`schedule`) and batches (`data`), so that a run here can be
//! compared with one there. Soft MoE and dense ViTs; the sparse baselines train in trainer/.

pub mod data;
pub mod init;
pub mod schedule;
mod trainer;
pub mod views;

pub use trainer::{StepOutput, TrainOptions, Trainer};

#[cfg(test)]
mod tests;
