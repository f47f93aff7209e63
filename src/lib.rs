//! softmoe: Soft Mixture-of-Experts layers and models on WebGPU.
//!
//! WGSL compute shaders implement the Soft MoE layer of Puigcerver et al. (2023) as vmoe computes it;
//! this crate binds them with `wgpu`, and keeps an f64 CPU reference of every kernel.

#[cfg(not(target_arch = "wasm32"))]
pub mod data;
pub mod error;
pub mod gpu;
#[cfg(not(target_arch = "wasm32"))]
pub mod images;
pub mod kernels;
pub mod layers;
pub mod model;
pub mod random;
pub mod reference;
pub mod tensor;
pub mod weights;

pub use error::{Error, Result};
pub use gpu::{GpuContext, GpuOptions};
pub use layers::{Gelu, LayerOutput, SoftMoe};
pub use tensor::Tensor;
pub use weights::{SafeTensors, SoftMoeWeights};
