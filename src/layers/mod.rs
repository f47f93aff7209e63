//! Layers that run on the GPU.

pub mod soft_moe;
pub mod sparse_moe;

pub use soft_moe::{LayerOptions, LayerOutput, SoftMoe};
pub use sparse_moe::{SparseMoe, SparseOutput};

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
