//! Layers that run on the GPU.

pub mod soft_moe;
pub mod sparse_moe;
#[doc(hidden)]
pub mod stages;

#[doc(hidden)]
pub use soft_moe::StageGemms;
pub use soft_moe::{LayerOptions, LayerOutput, SoftMoe};
pub use sparse_moe::{SparseMoe, SparseOutput};

pub use crate::config::Gelu;
