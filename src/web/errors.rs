//! Failures as JS `Error`s that carry a `code` and the fields of the Rust [`Error`] variant, so the
//! npm package can turn each into its typed error class (`WeightsError`, `InputError`, ...).

use js_sys::{Object, Reflect};
use wasm_bindgen::{JsCast, JsError, JsValue};

use crate::error::Error;

/// The `code` the npm package maps to an error class, and the variant's fields. No `_` arm: a new
/// variant does not compile until it says which JS error class it becomes.
fn fields(e: &Error) -> (&'static str, Vec<(&'static str, JsValue)>) {
    let s = |v: &str| JsValue::from_str(v);
    match e {
        Error::Io { path, .. } => ("WEIGHTS", vec![("file", s(&path.display().to_string()))]),
        Error::SafeTensors { context, reason } => ("WEIGHTS", vec![("file", s(context)), ("reason", s(reason))]),
        Error::MissingTensor { context, name } | Error::NonFinite { context, name, .. } | Error::UnusedTensor { context, name, .. } => {
            ("WEIGHTS", vec![("file", s(context)), ("tensor", s(name))])
        }
        Error::DType { context, name, found, expected } => {
            ("WEIGHTS", vec![("file", s(context)), ("tensor", s(name)), ("expected", s(expected)), ("found", s(found))])
        }
        Error::UnknownTensor { context, name, shape, expected, .. } => {
            ("WEIGHTS", vec![("file", s(context)), ("tensor", s(name)), ("expected", s(expected)), ("found", s(&format!("{shape:?}")))])
        }
        Error::Shape { context, name, found, expected } => {
            ("WEIGHTS", vec![("file", s(context)), ("tensor", s(name)), ("expected", s(expected)), ("found", s(&format!("{found:?}")))])
        }
        Error::Config { context, key, expected, found } => {
            ("CONFIG", vec![("file", s(context)), ("key", s(key)), ("expected", s(expected)), ("found", s(found))])
        }
        Error::Input { what, expected, found } => ("INPUT", vec![("what", s(what)), ("expected", s(expected)), ("found", s(found))]),
        Error::Usage(_) => ("INPUT", vec![]),
        Error::NoAdapter(reason) => ("WEBGPU_UNAVAILABLE", vec![("reason", s(reason))]),
        Error::DeviceLost { reason } => ("DEVICE_LOST", vec![("reason", s(reason))]),
        Error::Device { during, reason } => ("DEVICE", vec![("during", s(during)), ("reason", s(reason))]),
        Error::MissingFeature { feature, .. } => ("MISSING_FEATURE", vec![("feature", s(feature))]),
        Error::Limit { limit, .. } => ("LIMIT", vec![("limit", s(limit))]),
        Error::Internal(_) => ("INTERNAL", vec![]),
    }
}

/// A JS `Error` with `message`, `code` and `fields` set on it.
pub fn coded(message: &str, code: &str, fields: &[(&str, JsValue)]) -> JsValue {
    let err: JsValue = JsError::new(message).into();
    let obj: &Object = err.unchecked_ref();
    // Setting a property on a fresh Error cannot fail.
    let _ = Reflect::set(obj, &"code".into(), &code.into());
    for (k, v) in fields {
        let _ = Reflect::set(obj, &JsValue::from_str(k), v);
    }
    err
}

/// The crate's error as a coded JS error (see [`coded`]).
pub fn js_err(e: Error) -> JsValue {
    let (code, fields) = fields(&e);
    coded(&e.to_string(), code, &fields)
}

/// An input error: `what` was expected to be `expected` (with `shape`, the expected shape, where
/// there is one: `"b"` stands for any batch size).
pub fn input_err(message: &str, expected: &str, shape: Option<&[JsValue]>) -> JsValue {
    let mut f = vec![("expected", JsValue::from_str(expected))];
    if let Some(shape) = shape {
        f.push(("expectedShape", shape.iter().collect::<js_sys::Array>().into()));
    }
    coded(message, "INPUT", &f)
}
