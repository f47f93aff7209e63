//! softmoe: Soft Mixture-of-Experts layers and models on WebGPU.
//!
//! WGSL compute shaders implement the Soft MoE layer of Puigcerver et al. (2023) as vmoe computes it;
//! this crate binds them with `wgpu`, and keeps an f64 CPU reference of every kernel.
//!
//! A layer on the GPU against its f64 reference (on any adapter; lavapipe will do):
//!
//! ```
//! use softmoe::random::{random_input, random_layer, LayerShape, Rng};
//! use softmoe::{compare, reference, Gelu, GpuContext, SoftMoe};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut rng = Rng::new(1);
//! let shape = LayerShape { d: 16, n: 4, p: 2, h: 32, scale: 1.0, gelu: Gelu::Tanh, normalize: true };
//! let weights = random_layer(&mut rng, shape);
//! let x = random_input(&mut rng, 2, 9, 16); // 2 examples of 9 tokens
//! let layer = pollster::block_on(SoftMoe::new(pollster::block_on(GpuContext::new())?, &weights))?;
//! let out = pollster::block_on(layer.forward_with_maps(&x))?;
//! let want = reference::soft_moe_forward(&weights, &x)?;
//! compare::max_abs_diff(&out.y.data, &want.y)?.within("y", 1e-5)?;
//! assert_eq!(out.dispatch.unwrap().shape, vec![2, 9, 4, 2]); // D per example, [m, n, p]
//! # Ok(())
//! # }
//! ```
//!
//! A whole model is a folder with `config.json` and `model.safetensors` (`docs/weights.md`):
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use softmoe::{GpuContext, Tensor, Vit, VitWeights};
//! let vit = pollster::block_on(Vit::new(pollster::block_on(GpuContext::new())?, &VitWeights::load("weights/soft-moe-vit")?))?;
//! let out = pollster::block_on(vit.classify(&Tensor::new(vec![1, 28, 28], vec![0.5; 784])?))?;
//! println!("{}", vit.config().class_name(out.predictions[0]));
//! # Ok(())
//! # }
//! ```

// In the browser wgpu's handles are not Send; the shared context is still reference-counted.
#![cfg_attr(target_arch = "wasm32", allow(clippy::arc_with_non_send_sync))]

pub mod analysis;
pub mod compare;
pub mod config;
#[cfg(not(target_arch = "wasm32"))]
pub mod data;
pub mod error;
pub mod flops;
pub mod gpu;
#[cfg(not(target_arch = "wasm32"))]
pub mod images;
// The kernels' bindings: what the layers, the benchmark and the tests build on, not the API.
#[doc(hidden)]
pub mod kernels;
pub mod layers;
pub mod model;
pub mod random;
pub mod reference;
pub mod routing;
pub mod tensor;
#[cfg(not(target_arch = "wasm32"))]
#[doc(hidden)]
pub mod testing;
pub mod train;
#[cfg(target_arch = "wasm32")]
pub mod web;
pub mod weights;

pub use config::{Gelu, Pooling, SoftMoeConfig, SoftMoeVariant};
pub use error::{Error, Result};
pub use gpu::{GpuContext, GpuOptions};
pub use layers::{LayerOptions, LayerOutput, SoftMoe, SparseMoe, SparseOutput};
pub use model::{Classification, Classifier, Vit, VitConfig, VitOutput};
pub use routing::{RouteStats, Router};
pub use tensor::Tensor;
pub use weights::{BlockNames, LoadOptions, SafeTensors, SoftMoeWeights, SparseMoeWeights, VitWeights};
