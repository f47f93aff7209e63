//! The weights of one Soft MoE layer, in vmoe's names and layouts (SPEC §1).

use std::collections::BTreeMap;

use crate::config::{Gelu, SoftMoeConfig};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::weights::safetensors::{serialize, SafeTensors};
use crate::weights::{check_unused, LoadOptions};

/// The metadata keys a layer file may hold (`format` is written by safetensors' own helpers and
/// not read); any other is an error that names it.
pub const LAYER_METADATA: [&str; 4] = ["gelu", "normalize", "dispatch_bfloat16", "format"];

/// One Soft MoE layer's parameters and options. Kernels are stored [in, out].
#[derive(Clone, Debug, PartialEq)]
pub struct SoftMoeWeights {
    /// Model width.
    pub d: usize,
    /// Number of experts.
    pub n: usize,
    /// Slots per expert.
    pub p: usize,
    /// Expert hidden width.
    pub h: usize,
    /// `Router/mu`, [d, n, p]: slot j = e·p + s is column j of the d×(n·p) view.
    pub mu: Vec<f32>,
    /// `Router/scale`, the learned logit scale.
    pub scale: f32,
    /// `Mlp/Dense_0/kernel`, [n, d, h].
    pub w0: Vec<f32>,
    /// `Mlp/Dense_0/bias`, [n, h].
    pub b0: Vec<f32>,
    /// `Mlp/Dense_1/kernel`, [n, h, d].
    pub w1: Vec<f32>,
    /// `Mlp/Dense_1/bias`, [n, d].
    pub b1: Vec<f32>,
    pub gelu: Gelu,
    /// Normalise tokens and slot parameters before the logits (SPEC default true).
    pub normalize: bool,
    /// Round the dispatched tokens and the experts' outputs to bfloat16 as vmoe's
    /// `Bfloat16Dispatcher` does (SPEC §1; default false).
    pub dispatch_bfloat16: bool,
}

/// The tensor names inside a layer, relative to its prefix.
pub const MU: &str = "Router/mu";
pub const SCALE: &str = "Router/scale";
pub const W0: &str = "Mlp/Dense_0/kernel";
pub const B0: &str = "Mlp/Dense_0/bias";
pub const W1: &str = "Mlp/Dense_1/kernel";
pub const B1: &str = "Mlp/Dense_1/bias";

impl SoftMoeWeights {
    /// The layer's hyper-parameters, apart from its tensors.
    pub fn config(&self) -> SoftMoeConfig {
        SoftMoeConfig {
            d: self.d,
            n: self.n,
            p: self.p,
            h: self.h,
            gelu: self.gelu,
            normalize: self.normalize,
            dispatch_bfloat16: self.dispatch_bfloat16,
        }
    }

    /// Number of slots, n·p.
    pub fn slots(&self) -> usize {
        self.n * self.p
    }

    /// Checks sizes and values; every constructor ends here.
    pub fn validate(&self) -> Result<()> {
        let (d, n, p, h) = (self.d, self.n, self.p, self.h);
        let sizes = [
            ("d", d, "model width"),
            ("n", n, "number of experts"),
            ("p", p, "number of slots per expert"),
            ("h", h, "expert hidden width"),
        ];
        for (key, v, what) in sizes {
            if v == 0 {
                return Err(Error::config("layer weights", key, format!("a positive {what} (n·p, d and h must be positive)"), v));
            }
        }
        let checks: [(&str, &[f32], usize); 5] =
            [(MU, &self.mu, d * n * p), (W0, &self.w0, n * d * h), (B0, &self.b0, n * h), (W1, &self.w1, n * h * d), (B1, &self.b1, n * d)];
        for (name, data, want) in checks {
            if data.len() != want {
                return Err(Error::config("layer weights", name, format!("{want} values"), format!("{} values", data.len())));
            }
            if let Some(i) = data.iter().position(|v| !v.is_finite()) {
                return Err(Error::NonFinite { context: "layer weights".into(), name: name.into(), index: i });
            }
        }
        if !self.scale.is_finite() {
            return Err(Error::NonFinite { context: "layer weights".into(), name: SCALE.into(), index: 0 });
        }
        Ok(())
    }

    /// Loads a layer file (`softmoe layer`, the browser's `SoftMoeLayer.load`): the six tensors
    /// and the metadata of SPEC §1, refusing an unknown metadata key and (unless `options` allow
    /// it) any other tensor.
    pub fn from_layer_file(st: &SafeTensors, options: LoadOptions) -> Result<Self> {
        let ctx = st.context();
        if let Some(key) = st.metadata().keys().find(|k| !LAYER_METADATA.contains(&k.as_str())) {
            let expected = format!("one of the known keys ({})", LAYER_METADATA.join(", "));
            return Err(Error::config(format!("{ctx} metadata"), key.as_str(), expected, "an unknown key"));
        }
        let w = Self::from_safetensors(st, "")?;
        check_unused(st, |name| [MU, SCALE, W0, B0, W1, B1].contains(&name), options)?;
        Ok(w)
    }

    /// Reads the layer stored under `prefix` (e.g. `Encoder/encoderblock_3/Moe/` inside a model, or
    /// empty), taking `gelu`/`normalize`/`dispatch_bfloat16` from metadata; the file's other tensors are not looked at
    /// (a model's loader checks them; [`SoftMoeWeights::from_layer_file`] for a layer file).
    pub fn from_safetensors(st: &SafeTensors, prefix: &str) -> Result<Self> {
        let ctx = st.context().to_string();
        let get = |name: &str| st.tensor_f32(&format!("{prefix}{name}"));
        let shape_err = |name: &str, found: &[usize], expected: String| Error::Shape {
            context: ctx.clone(),
            name: format!("{prefix}{name}"),
            found: found.to_vec(),
            expected,
        };
        let mu = get(MU)?;
        let [d, n, p] = mu.shape[..] else {
            return Err(shape_err(MU, &mu.shape, "[d, n, p]".into()));
        };
        let scale = get(SCALE)?;
        if !(scale.shape.is_empty() || scale.shape == [1]) {
            return Err(shape_err(SCALE, &scale.shape, "[] or [1]".into()));
        }
        let w0 = get(W0)?;
        let h = match w0.shape[..] {
            [nn, dd, h] if nn == n && dd == d => h,
            _ => return Err(shape_err(W0, &w0.shape, format!("[{n}, {d}, h]"))),
        };
        let expect = |t: &Tensor, name: &str, want: &[usize]| {
            if t.shape == want {
                Ok(())
            } else {
                Err(shape_err(name, &t.shape, format!("{want:?}")))
            }
        };
        let b0 = get(B0)?;
        expect(&b0, B0, &[n, h])?;
        let w1 = get(W1)?;
        expect(&w1, W1, &[n, h, d])?;
        let b1 = get(B1)?;
        expect(&b1, B1, &[n, d])?;
        let meta = st.metadata();
        let gelu = match meta.get("gelu") {
            None => Gelu::Tanh,
            Some(s) => {
                Gelu::parse(s).ok_or_else(|| Error::config(format!("{ctx} metadata"), "gelu", "`tanh` or `erf`", format!("`{s}`")))?
            }
        };
        let flag = |key: &str, default: bool| match meta.get(key).map(String::as_str) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(s) => Err(Error::config(format!("{ctx} metadata"), key, "`true` or `false`", format!("`{s}`"))),
        };
        let normalize = flag("normalize", true)?;
        let dispatch_bfloat16 = flag("dispatch_bfloat16", false)?;
        let w = SoftMoeWeights {
            d,
            n,
            p,
            h,
            mu: mu.data,
            scale: scale.data[0],
            w0: w0.data,
            b0: b0.data,
            w1: w1.data,
            b1: b1.data,
            gelu,
            normalize,
            dispatch_bfloat16,
        };
        w.validate().map_err(|e| match e {
            Error::NonFinite { name, index, .. } => Error::NonFinite { context: ctx.clone(), name: format!("{prefix}{name}"), index },
            other => {
                other.in_context(if prefix.is_empty() { ctx.clone() } else { format!("{ctx}: layer {}", prefix.trim_end_matches('/')) })
            }
        })?;
        Ok(w)
    }

    /// Serialises the layer as a safetensors file with SPEC names and metadata.
    pub fn to_safetensors(&self) -> Vec<u8> {
        let (d, n, p, h) = (self.d, self.n, self.p, self.h);
        let t = |shape: Vec<usize>, data: &[f32]| Tensor { shape, data: data.to_vec() };
        let tensors = [
            (MU, t(vec![d, n, p], &self.mu)),
            (SCALE, t(vec![], &[self.scale])),
            (W0, t(vec![n, d, h], &self.w0)),
            (B0, t(vec![n, h], &self.b0)),
            (W1, t(vec![n, h, d], &self.w1)),
            (B1, t(vec![n, d], &self.b1)),
        ];
        let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
        let mut meta = BTreeMap::new();
        meta.insert("gelu".to_string(), self.gelu.name().to_string());
        meta.insert("normalize".to_string(), self.normalize.to_string());
        meta.insert("dispatch_bfloat16".to_string(), self.dispatch_bfloat16.to_string());
        serialize(&refs, &meta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::{random_layer, LayerShape, Rng};

    fn layer_file(extra: &[(&str, Tensor)], meta: &[(&str, &str)]) -> SafeTensors {
        let w = random_layer(&mut Rng::new(9), LayerShape { d: 4, n: 2, p: 1, h: 3, scale: 1.0, gelu: Gelu::Tanh, normalize: true });
        let st = SafeTensors::parse(w.to_safetensors(), "mem").unwrap();
        let mut tensors: Vec<(String, Tensor)> = st.entries().iter().map(|e| (e.name.clone(), st.tensor_f32(&e.name).unwrap())).collect();
        tensors.extend(extra.iter().map(|(n, t)| (n.to_string(), t.clone())));
        let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let mut metadata = st.metadata().clone();
        metadata.extend(meta.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        SafeTensors::parse(serialize(&refs, &metadata), "layer.safetensors").unwrap()
    }

    #[test]
    fn a_layer_file_with_another_tensor_is_refused_by_name_unless_allowed() {
        let st = layer_file(&[("Router/bias", Tensor::zeros(vec![2]))], &[]);
        match SoftMoeWeights::from_layer_file(&st, LoadOptions::default()) {
            Err(e @ Error::UnusedTensor { .. }) => {
                assert!(
                    matches!(&e, Error::UnusedTensor { context, name, unused: 1, .. } if context == "layer.safetensors" && name == "Router/bias")
                );
            }
            other => panic!("expected Error::UnusedTensor, got {other:?}"),
        }
        assert!(SoftMoeWeights::from_layer_file(&st, LoadOptions { allow_unused: true }).is_ok());
        assert!(SoftMoeWeights::from_layer_file(&layer_file(&[], &[]), LoadOptions::default()).is_ok());
    }

    #[test]
    fn dispatch_bfloat16_is_read_from_the_metadata_and_written_back() {
        assert!(!SoftMoeWeights::from_layer_file(&layer_file(&[], &[]), LoadOptions::default()).unwrap().dispatch_bfloat16);
        let w = SoftMoeWeights::from_layer_file(&layer_file(&[], &[("dispatch_bfloat16", "true")]), LoadOptions::default()).unwrap();
        assert!(w.dispatch_bfloat16 && w.config().dispatch_bfloat16);
        let again = SafeTensors::parse(w.to_safetensors(), "again").unwrap();
        assert_eq!(again.metadata()["dispatch_bfloat16"], "true");
        match SoftMoeWeights::from_layer_file(&layer_file(&[], &[("dispatch_bfloat16", "yes")]), LoadOptions::default()) {
            Err(Error::Config { key, expected, found, .. }) => {
                assert_eq!((key.as_str(), expected.as_str(), found.as_str()), ("dispatch_bfloat16", "`true` or `false`", "`yes`"));
            }
            other => panic!("expected Error::Config, got {other:?}"),
        }
    }

    #[test]
    fn an_unknown_metadata_key_is_refused_by_name() {
        assert!(SoftMoeWeights::from_layer_file(&layer_file(&[], &[("format", "np")]), LoadOptions::default()).is_ok());
        match SoftMoeWeights::from_layer_file(&layer_file(&[], &[("gelu_approx", "none")]), LoadOptions::default()) {
            Err(Error::Config { context, key, found, .. }) => {
                assert_eq!(
                    (context.as_str(), key.as_str(), found.as_str()),
                    ("layer.safetensors metadata", "gelu_approx", "an unknown key")
                );
            }
            other => panic!("expected Error::Config, got {other:?}"),
        }
    }
}
