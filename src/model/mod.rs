//! The Soft MoE Vision Transformer (SPEC §2): its configuration and its GPU forward pass.

mod classifier;
mod vit;

pub use crate::config::{VitConfig, LAYER_NORM_EPS};
pub use classifier::{Classification, Classifier};
pub use vit::{argmax, LayerMaps, LayerRoutes, Vit, VitOutput};
