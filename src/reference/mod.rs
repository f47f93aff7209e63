//! The f64 CPU reference: the whole Soft MoE layer, the sparse MoE layers and the ViT, written for
//! clarity, not speed, from the kernels' own f64 references (each in its kernel's folder,
//! `kernels/<op>/reference.rs`, re-exported here).
//!
//! It is the oracle of the tests and the `--cpu` backend of the CLI. Matrices are row-major slices.

#[doc(hidden)]
pub mod grad_check;
mod soft_moe;
mod sparse_moe;
mod vit;
mod vit_backward;

pub use crate::kernels::add_position::reference::add_position;
pub use crate::kernels::attention::reference::{attend, attention, attention_qk, QkNormRef, Queries};
pub use crate::kernels::combine_softmax::reference::combine_softmax;
pub use crate::kernels::dispatch_softmax::reference::dispatch_softmax;
pub use crate::kernels::gemm::reference::{dense, erf, gelu, gemm, matmul, transpose};
pub use crate::kernels::l2_normalize::reference::{l2_normalize, NORM_EPS};
pub use crate::kernels::layer_norm::reference::layer_norm;
pub use crate::kernels::mean_pool::reference::mean_pool;
pub use crate::kernels::patchify::reference::patchify;
pub use crate::kernels::rms_norm::reference::{rms_norm, RMS_NORM_EPS};
pub use crate::kernels::round_bf16::reference::{round_bf16, round_bf16_f64};
pub use crate::kernels::router_softmax::reference::router_softmax;
pub use soft_moe::*;
pub use sparse_moe::*;
pub use vit::*;
pub use vit_backward::*;
