//! Weight files: the safetensors reader/writer and the typed weights of each layer.

pub mod safetensors;
mod soft_moe;
mod sparse_moe;
mod vit;

pub use self::safetensors::SafeTensors;
pub use soft_moe::SoftMoeWeights;
pub use sparse_moe::{SparseMoeWeights, ROUTER_KERNEL};
pub use vit::{vit_tensor_shapes, BlockMlp, BlockWeights, VitWeights};
