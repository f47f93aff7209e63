//! The f64 CPU reference: every kernel and the whole Soft MoE layer, written for clarity, not speed.
//!
//! It is the oracle of the tests and the `--cpu` backend of the CLI. Matrices are row-major slices.

mod soft_moe;
mod sparse_moe;
mod vit;

pub use soft_moe::*;
pub use sparse_moe::*;
pub use vit::*;
