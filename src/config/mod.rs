//! What a model is, apart from its weights: the hyper-parameters of a Soft MoE layer and of a ViT.
//! A leaf module: it depends on nothing of the crate but its errors and the routing rules, so
//! every other module (kernels, weights, reference, layers, model) can use it without a cycle.

mod soft_moe;
mod vit;

pub use soft_moe::SoftMoeConfig;
pub use vit::{VitConfig, LAYER_NORM_EPS};

/// Which GELU the expert MLPs use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Gelu {
    /// The tanh approximation (Flax's `nn.gelu` default, used by vmoe).
    Tanh,
    /// The exact GELU, x·Φ(x) with erf (PyTorch's default).
    Erf,
}

impl Gelu {
    /// Parses the safetensors metadata value (`tanh` or `erf`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "tanh" => Some(Gelu::Tanh),
            "erf" => Some(Gelu::Erf),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Gelu::Tanh => "tanh",
            Gelu::Erf => "erf",
        }
    }
}
