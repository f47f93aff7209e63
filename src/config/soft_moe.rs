//! A Soft MoE layer's hyper-parameters, apart from its tensors.

use crate::config::Gelu;

/// Which Soft MoE layer a set of weights computes: the layer file's metadata `variant`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SoftMoeVariant {
    /// `vmoe`: google-research/vmoe's `SoftRouter` (SPEC §1). L = scale · X̂ Φ̂ with tokens and Φ
    /// columns L2-normalised (eps 1e-6 inside the square root) when `normalize`; X̃ = DᵀX from the
    /// un-normalised tokens.
    #[default]
    Vmoe,
    /// `soft-moe-pytorch`: PyPI `soft-moe-pytorch` 0.1.9's `SoftMoE` (tests/fixtures/vmoe/README.md).
    /// The tokens are replaced by X' = RMSNorm(X) = X / max(‖X‖, 1e-12) · √d · γ (`Norm/scale`)
    /// before everything; Φ' = RMSNorm(Φ) per slot with its own γ (`SlotNorm/scale`); L = X'Φ' (no
    /// learned scale); X̃ = DᵀX', so the experts read the normalised tokens too. No residual, as in vmoe.
    SoftMoePytorch,
}

impl SoftMoeVariant {
    /// Parses the metadata value (`vmoe` or `soft-moe-pytorch`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "vmoe" => Some(SoftMoeVariant::Vmoe),
            "soft-moe-pytorch" => Some(SoftMoeVariant::SoftMoePytorch),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SoftMoeVariant::Vmoe => "vmoe",
            SoftMoeVariant::SoftMoePytorch => "soft-moe-pytorch",
        }
    }
}

/// d (token width), n experts of p slots each, h (the experts' hidden width), the GELU of the
/// experts, whether tokens and Φ are L2-normalised, whether the dispatch and combine data are
/// rounded to bfloat16 as vmoe's `Bfloat16Dispatcher` does (SPEC §1), and which layer it is.
///
/// ```
/// use softmoe::{Gelu, SoftMoeConfig, SoftMoeVariant};
/// let c = SoftMoeConfig {
///     d: 384, n: 128, p: 1, h: 1536, gelu: Gelu::Tanh, normalize: true, dispatch_bfloat16: false,
///     variant: SoftMoeVariant::Vmoe,
/// };
/// assert_eq!((c.slots(), c.expert_parameters()), (128, 2 * 384 * 1536 + 1536 + 384));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SoftMoeConfig {
    pub d: usize,
    pub n: usize,
    pub p: usize,
    pub h: usize,
    pub gelu: Gelu,
    pub normalize: bool,
    /// Round X to bfloat16 before X̃ = DᵀX and Ỹ before Y = CỸ (round to nearest even; D, C and
    /// all arithmetic stay f32): vmoe's `Bfloat16Dispatcher`, always on in its `SoftRouter`.
    pub dispatch_bfloat16: bool,
    /// vmoe's layer or soft-moe-pytorch's.
    pub variant: SoftMoeVariant,
}

impl SoftMoeConfig {
    /// n·p, the slots every example is dispatched into.
    pub fn slots(&self) -> usize {
        self.n * self.p
    }

    /// One expert's parameters: both Dense kernels and biases.
    pub fn expert_parameters(&self) -> usize {
        2 * self.d * self.h + self.h + self.d
    }
}
