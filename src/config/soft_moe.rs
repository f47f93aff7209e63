//! A Soft MoE layer's hyper-parameters, apart from its tensors.

use crate::config::Gelu;

/// d (token width), n experts of p slots each, h (the experts' hidden width), the GELU of the
/// experts, whether tokens and Φ are L2-normalised, and whether the dispatch and combine data are
/// rounded to bfloat16 as vmoe's `Bfloat16Dispatcher` does (SPEC §1).
///
/// ```
/// use softmoe::{Gelu, SoftMoeConfig};
/// let c = SoftMoeConfig { d: 384, n: 128, p: 1, h: 1536, gelu: Gelu::Tanh, normalize: true, dispatch_bfloat16: false };
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
