//! The crate's one error type: a variant per failure a user can cause.

use std::fmt::Display;
use std::path::PathBuf;

/// Everything that can go wrong in `softmoe`, each variant naming what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: not a valid safetensors file: {reason}")]
    SafeTensors { context: String, reason: String },
    #[error("{context}: missing tensor `{name}`")]
    MissingTensor { context: String, name: String },
    #[error("{context}: tensor `{name}` has dtype {found}, expected {expected}")]
    DType { context: String, name: String, found: String, expected: String },
    #[error("{context}: tensor `{name}` has shape {found:?}, expected {expected}")]
    Shape { context: String, name: String, found: Vec<usize>, expected: String },
    #[error("{context}: tensor `{name}` holds a non-finite value (NaN or Inf) at flat index {index}")]
    NonFinite { context: String, name: String, index: usize },
    /// A tensor the config does not use (`hint` says what would use it, where known); `unused`
    /// counts all such tensors of the file. `LoadOptions::allow_unused` loads the file anyway.
    #[error(
        "{context}: tensor `{name}` is not used by the config{hint} ({unused} unused in all); \
         `--allow-unused` (LoadOptions::allow_unused, `allowUnused` in the npm package) loads the file without them"
    )]
    UnusedTensor { context: String, name: String, unused: usize, hint: String },
    /// A tensor that the format being converted from does not have (`softmoe convert`): `expected`
    /// says what that format holds, `hint` what the tensor suggests, where known. Never ignored.
    #[error("{context}: unknown tensor `{name}` {shape:?}, expected only {expected}{hint}")]
    UnknownTensor { context: String, name: String, shape: Vec<usize>, expected: String, hint: String },
    /// A configuration value outside what softmoe supports; `context` names the file or layer.
    #[error("{context}: `{key}` is {found}, expected {expected}")]
    Config { context: String, key: String, expected: String, found: String },
    /// Input that does not fit (a tensor, an image, a file's contents, an argument).
    #[error("{what}: expected {expected}, found {found}")]
    Input { what: String, expected: String, found: String },
    #[error("no GPU adapter found: {0}")]
    NoAdapter(String),
    /// The device refused an operation (not lost, not a softmoe bug).
    #[error("GPU device error while {during}: {reason}")]
    Device { during: String, reason: String },
    /// The device was lost (driver reset, `destroy`, out of memory): every later call fails; a new
    /// `GpuContext` (and the layers on it) is the way back.
    #[error("the GPU device was lost ({reason}); create a new GpuContext")]
    DeviceLost { reason: String },
    /// An optional device feature that `needed_for` requires and the adapter does not offer (or that
    /// `GpuOptions` hid): the caller can fall back, e.g. to f32 weights.
    #[error("{needed_for} need the `{feature}` feature, which {adapter} lacks")]
    MissingFeature { feature: &'static str, needed_for: &'static str, adapter: String },
    /// A bug in softmoe itself, never caused by the caller's input or device.
    #[error("internal error (a bug in softmoe, please report it): {0}")]
    Internal(String),
    #[error("{what} needs {needed} bytes but the device limit `{limit}` is {max}")]
    Limit { what: String, limit: &'static str, needed: u64, max: u64 },
    #[error("usage: {0}")]
    Usage(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }

    /// [`Error::Input`]: `what` (a tensor, file or argument) was expected to be `expected`.
    pub(crate) fn input(what: impl Into<String>, expected: impl Into<String>, found: impl Display) -> Self {
        Error::Input { what: what.into(), expected: expected.into(), found: found.to_string() }
    }

    /// [`Error::Config`]: `key` of `context` (a file or layer) was expected to be `expected`.
    pub(crate) fn config(context: impl Into<String>, key: impl Into<String>, expected: impl Into<String>, found: impl Display) -> Self {
        Error::Config { context: context.into(), key: key.into(), expected: expected.into(), found: found.to_string() }
    }

    /// [`Error::Device`]: the device refused what softmoe was doing `during`.
    pub(crate) fn device(during: impl Into<String>, reason: impl Display) -> Self {
        Error::Device { during: during.into(), reason: reason.to_string() }
    }

    /// A [`Error::Config`] with its `context` replaced by `context` (e.g. the file a layer came
    /// from); any other error unchanged.
    pub(crate) fn in_context(self, context: impl Into<String>) -> Self {
        match self {
            Error::Config { key, expected, found, .. } => Error::Config { context: context.into(), key, expected, found },
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::Error;
    use crate::config::Gelu;
    use crate::weights::safetensors::serialize;
    use crate::{Router, SafeTensors, SoftMoeWeights, Tensor, VitConfig};

    #[test]
    fn input_errors_name_the_tensor_what_was_expected_and_what_was_found() {
        match Tensor::new(vec![2, 3], vec![0.0; 5]) {
            Err(Error::Input { what, expected, found }) => {
                assert_eq!((what.as_str(), expected.as_str(), found.as_str()), ("tensor of shape [2, 3]", "6 values", "5 values"));
            }
            other => panic!("expected Error::Input, got {other:?}"),
        }
        let x = Tensor::new(vec![2, 3], vec![0.0; 6]).unwrap();
        match crate::reference::check_input(16, &x) {
            Err(e @ Error::Input { .. }) => {
                assert!(matches!(&e, Error::Input { what, expected, found }
                    if what == "x" && expected == "shape [batch, tokens, 16]" && found == "shape [2, 3]"));
                assert_eq!(e.to_string(), "x: expected shape [batch, tokens, 16], found shape [2, 3]");
            }
            other => panic!("expected Error::Input, got {other:?}"),
        }
    }

    /// A one-expert layer's file whose metadata `gelu` is `gelu`.
    fn layer_file(gelu: &str) -> SafeTensors {
        let w = SoftMoeWeights {
            d: 1,
            n: 1,
            p: 1,
            h: 1,
            mu: vec![1.0],
            scale: 1.0,
            w0: vec![1.0],
            b0: vec![0.0],
            w1: vec![1.0],
            b1: vec![0.0],
            gelu: Gelu::Tanh,
            normalize: true,
            dispatch_bfloat16: false,
            variant: crate::SoftMoeVariant::Vmoe,
            norm_scale: Vec::new(),
            slot_norm_scale: Vec::new(),
        };
        let st = SafeTensors::parse(w.to_safetensors(), "mem").unwrap();
        let tensors: Vec<(String, Tensor)> = st.entries().iter().map(|e| (e.name.clone(), st.tensor_f32(&e.name).unwrap())).collect();
        let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let mut meta: BTreeMap<String, String> = st.metadata().clone();
        meta.insert("gelu".into(), gelu.into());
        SafeTensors::parse(serialize(&refs, &meta), "layer.safetensors").unwrap()
    }

    #[test]
    fn config_errors_name_the_file_and_the_key() {
        assert!(SoftMoeWeights::from_safetensors(&layer_file("erf"), "").is_ok());
        match SoftMoeWeights::from_safetensors(&layer_file("sigmoid"), "") {
            Err(Error::Config { context, key, expected, found }) => {
                assert_eq!(context, "layer.safetensors metadata");
                assert_eq!(key, "gelu");
                assert_eq!(expected, "`tanh` or `erf`");
                assert_eq!(found, "`sigmoid`");
            }
            other => panic!("expected Error::Config, got {other:?}"),
        }
        // A router's error names the router; inside a config.json, the file.
        assert!(matches!(Router::tokens_choice(9, 1.0).validate(8),
            Err(Error::Config { context, key, found, .. }) if context == "router" && key == "router_k" && found == "9"));
        let json = r#"{"image_size": 28, "channels": 1, "patch_size": 4, "hidden_size": 8, "num_layers": 1, "num_heads": 2,
            "mlp_dim": 8, "num_classes": 10, "moe_layers": [0], "num_experts": 2, "expert_mlp_dim": 8,
            "moe_type": "tokens_choice", "router_k": 3, "group_size": 2}"#;
        match VitConfig::from_json(json, "model/config.json") {
            Err(e @ Error::Config { .. }) => {
                assert!(matches!(&e, Error::Config { context, key, found, .. }
                    if context == "model/config.json" && key == "router_k" && found == "3"));
                assert!(e.to_string().starts_with("model/config.json: `router_k` is 3, expected in 1..=2"), "{e}");
            }
            other => panic!("expected Error::Config, got {other:?}"),
        }
    }

    #[test]
    fn device_errors_say_what_the_device_refused() {
        // A fresh device: the refused map is reported outside any error scope, so it is kept away
        // from the device the other tests share.
        let ctx = pollster::block_on(crate::GpuContext::new()).expect("a wgpu adapter (CI installs mesa-vulkan-drivers)");
        let not_mappable = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("not mappable"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        match pollster::block_on(crate::gpu::read_bytes(&ctx, &not_mappable, 16)) {
            Err(e @ Error::Device { .. }) => {
                assert!(matches!(&e, Error::Device { during, reason } if during == "reading results back" && !reason.is_empty()), "{e:?}");
                assert!(e.to_string().starts_with("GPU device error while reading results back: "), "{e}");
            }
            other => panic!("expected Error::Device, got {other:?}"),
        }
    }
}
