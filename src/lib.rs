//! softmoe: Soft Mixture-of-Experts layers and models on WebGPU.
//!
//! WGSL compute shaders implement the Soft MoE layer of Puigcerver et al. (2023) as vmoe computes it;
//! this crate binds them with `wgpu`, and keeps an f64 CPU reference of every kernel.

// In the browser wgpu's handles are not Send; the shared context is still reference-counted.
#![cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]

pub mod compare;
#[cfg(not(target_arch = "wasm32"))]
pub mod data;
pub mod error;
pub mod flops;
pub mod gpu;
#[cfg(not(target_arch = "wasm32"))]
pub mod images;
pub mod kernels;
pub mod layers;
pub mod model;
pub mod random;
pub mod reference;
pub mod routing;
pub mod tensor;
#[cfg(target_arch = "wasm32")]
pub mod web;
pub mod weights;

pub use error::{Error, Result};
pub use gpu::{GpuContext, GpuOptions};
pub use layers::{Gelu, LayerOutput, SoftMoe};
pub use tensor::Tensor;
pub use weights::{SafeTensors, SoftMoeWeights};
