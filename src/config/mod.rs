//! What a model is, apart from its weights: the hyper-parameters of a Soft MoE layer and of a ViT.
//! A leaf module: it depends on nothing of the crate but its errors and the routing rules, so
//! every other module (kernels, weights, reference, layers, model) can use it without a cycle.

mod soft_moe;
mod vit;

pub use soft_moe::{SoftMoeConfig, SoftMoeVariant};
pub use vit::{VitConfig, LAYER_NORM_EPS};

/// How a ViT turns the encoder's output into the vector its head reads: vmoe's `classifier`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Pooling {
    /// `gap`: the mean over all tokens after the final LayerNorm.
    #[default]
    Gap,
    /// `token`: a learned class token (`cls` [1, 1, d]) is prepended to the patch tokens before the
    /// position embedding (which then has m + 1 rows, row 0 the class token's); the head reads
    /// token 0 after the final LayerNorm.
    Token,
    /// `map`: vmoe's `MapHead`, multi-head attention pooling of the final LayerNorm's output by a
    /// learned probe query, then `out + Mlp(LayerNorm(out))`.
    Map,
}

impl Pooling {
    /// Parses vmoe's `classifier` value (`gap`, `token` or `map`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "gap" => Some(Pooling::Gap),
            "token" => Some(Pooling::Token),
            "map" => Some(Pooling::Map),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Pooling::Gap => "gap",
            Pooling::Token => "token",
            Pooling::Map => "map",
        }
    }
}

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
