//! Weight files: the safetensors reader/writer and the typed weights of each layer.

pub mod convert;
pub mod params;
pub mod safetensors;
mod soft_moe;
mod sparse_moe;
mod vit;

pub use self::safetensors::SafeTensors;
pub use soft_moe::SoftMoeWeights;
pub use sparse_moe::{SparseMoeWeights, ROUTER_KERNEL};
pub use vit::{vit_tensor_shapes, vit_tensor_shapes_as, BlockMlp, BlockNames, BlockWeights, MapHeadWeights, QkNorm, VitWeights};

use crate::error::{Error, Result};

/// How strictly a weight file is read. By default every tensor of the file must be one the config
/// uses: a tensor it does not use (a qk-norm scale, a class token, another head) would otherwise be
/// dropped without a word and the model would load and compute something else.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Load even when the file holds tensors the config does not use (they are ignored).
    /// `--allow-unused` on the command line, `allowUnused` in the npm package.
    pub allow_unused: bool,
}

/// Refuses the first tensor of `st` that `used` rejects (unless `options` allow it), naming it, the
/// number of unused tensors, and what in the config would use it where that is known.
pub(crate) fn check_unused(st: &SafeTensors, used: impl Fn(&str) -> bool, options: LoadOptions) -> Result<()> {
    if options.allow_unused {
        return Ok(());
    }
    let unused: Vec<&str> = st.entries().iter().map(|e| e.name.as_str()).filter(|n| !used(n)).collect();
    match unused.first() {
        None => Ok(()),
        Some(name) => {
            Err(Error::UnusedTensor { context: st.context().to_string(), name: name.to_string(), unused: unused.len(), hint: hint(name) })
        }
    }
}

/// What a tensor the config does not use is, where vmoe's naming tells (empty otherwise).
fn hint(name: &str) -> String {
    let hint = if name.contains("/query_ln/") || name.contains("/key_ln/") {
        "LayerNorm on queries and keys: set `attention_qk_norm` to true"
    } else if name == "cls" {
        "a class token: set `classifier` to `token`"
    } else if name.starts_with("MapHead/") {
        "the attention-pooling head: set `classifier` to `map`"
    } else if name.starts_with("pre_logits/") {
        "a representation layer before the head (vmoe's `representation_size`), which softmoe does not run"
    } else if name.ends_with("Moe/Norm/scale") || name.ends_with("Moe/SlotNorm/scale") {
        "soft-moe-pytorch's RMSNorm scales: set `moe_variant` to `soft-moe-pytorch`"
    } else if name.starts_with("Encoder/encoderblock_") {
        "a block tensor of another layout: check `num_layers`, `moe_layers` and `moe_type`"
    } else {
        return String::new();
    };
    format!(" ({hint})")
}
