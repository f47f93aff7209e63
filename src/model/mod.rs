//! The Soft MoE Vision Transformer (SPEC §2): its configuration and its GPU forward pass.

mod config;
mod vit;

pub use config::VitConfig;
pub use vit::{argmax, LayerMaps, Vit, VitOutput};
