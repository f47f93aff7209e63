//! The crate's one error type: a variant per failure a user can cause.

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
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("input does not fit the layer: {0}")]
    Input(String),
    #[error("no GPU adapter found: {0}")]
    NoAdapter(String),
    #[error("GPU device error: {0}")]
    Device(String),
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
}
