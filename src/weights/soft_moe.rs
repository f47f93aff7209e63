//! The weights of one Soft MoE layer, in vmoe's names and layouts (SPEC §1), and those of
//! soft-moe-pytorch's variant of the layer (`SoftMoeVariant::SoftMoePytorch`).

use std::collections::BTreeMap;

use crate::config::{Gelu, SoftMoeConfig, SoftMoeVariant};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::weights::safetensors::{serialize, SafeTensors};
use crate::weights::{check_unused, LoadOptions};

/// The metadata keys a layer file may hold (`format` is written by safetensors' own helpers and
/// not read); any other is an error that names it.
pub const LAYER_METADATA: [&str; 5] = ["gelu", "normalize", "dispatch_bfloat16", "variant", "format"];

/// One Soft MoE layer's parameters and options. Kernels are stored [in, out]. In the
/// soft-moe-pytorch variant `scale` is 1 (that layer has none) and the two RMSNorm scales hold d
/// values each; in vmoe's they are empty.
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
    /// `Router/scale`, the learned logit scale (1 in the soft-moe-pytorch variant, which has none).
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
    /// vmoe's layer (default) or soft-moe-pytorch's (metadata `variant`).
    pub variant: SoftMoeVariant,
    /// `Norm/scale`, [d]: soft-moe-pytorch's `norm.gamma`, the RMSNorm of the tokens (empty for vmoe).
    pub norm_scale: Vec<f32>,
    /// `SlotNorm/scale`, [d]: soft-moe-pytorch's `slot_norm.gamma`, the RMSNorm of Φ's columns
    /// (empty for vmoe).
    pub slot_norm_scale: Vec<f32>,
}

/// The tensor names inside a layer, relative to its prefix.
pub const MU: &str = "Router/mu";
pub const SCALE: &str = "Router/scale";
pub const W0: &str = "Mlp/Dense_0/kernel";
pub const B0: &str = "Mlp/Dense_0/bias";
pub const W1: &str = "Mlp/Dense_1/kernel";
pub const B1: &str = "Mlp/Dense_1/bias";
/// The soft-moe-pytorch variant's RMSNorm scales, [d] each (it has no `Router/scale`).
pub const NORM_SCALE: &str = "Norm/scale";
pub const SLOT_NORM_SCALE: &str = "SlotNorm/scale";

/// The tensors of a layer of `variant`, relative to its prefix.
pub fn layer_tensor_names(variant: SoftMoeVariant) -> &'static [&'static str] {
    match variant {
        SoftMoeVariant::Vmoe => &[MU, SCALE, W0, B0, W1, B1],
        SoftMoeVariant::SoftMoePytorch => &[MU, NORM_SCALE, SLOT_NORM_SCALE, W0, B0, W1, B1],
    }
}

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
            variant: self.variant,
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
        let norms: [(&str, &[f32]); 2] = [(NORM_SCALE, &self.norm_scale), (SLOT_NORM_SCALE, &self.slot_norm_scale)];
        match self.variant {
            SoftMoeVariant::Vmoe => {
                if let Some((name, data)) = norms.iter().find(|(_, v)| !v.is_empty()) {
                    let expected = "no values (RMSNorm scales belong to the soft-moe-pytorch variant)";
                    return Err(Error::config("layer weights", *name, expected, format!("{} values", data.len())));
                }
            }
            SoftMoeVariant::SoftMoePytorch => {
                for (name, data) in norms {
                    if data.len() != d {
                        return Err(Error::config("layer weights", name, format!("{d} values (d)"), format!("{} values", data.len())));
                    }
                    if let Some(i) = data.iter().position(|v| !v.is_finite()) {
                        return Err(Error::NonFinite { context: "layer weights".into(), name: name.into(), index: i });
                    }
                }
                // soft-moe-pytorch's layer has no scale, always normalises and never rounds to bf16.
                let fixed = [
                    ("scale", self.scale != 1.0, "1 (soft-moe-pytorch has no logit scale)", self.scale.to_string()),
                    ("normalize", !self.normalize, "true (soft-moe-pytorch always applies its RMSNorm)", "false".into()),
                    (
                        "dispatch_bfloat16",
                        self.dispatch_bfloat16,
                        "false (vmoe's Bfloat16Dispatcher is no part of soft-moe-pytorch)",
                        "true".into(),
                    ),
                ];
                if let Some((key, _, expected, found)) = fixed.into_iter().find(|f| f.1) {
                    return Err(Error::config("soft-moe-pytorch layer", key, expected, found));
                }
            }
        }
        Ok(())
    }

    /// Loads a layer file (`softmoe layer`, the browser's `SoftMoeLayer.load`): the six tensors
    /// and the metadata of SPEC §1 (or the soft-moe-pytorch variant's seven), refusing an unknown
    /// metadata key and (unless `options` allow it) any other tensor.
    pub fn from_layer_file(st: &SafeTensors, options: LoadOptions) -> Result<Self> {
        let ctx = st.context();
        if let Some(key) = st.metadata().keys().find(|k| !LAYER_METADATA.contains(&k.as_str())) {
            let expected = format!("one of the known keys ({})", LAYER_METADATA.join(", "));
            return Err(Error::config(format!("{ctx} metadata"), key.as_str(), expected, "an unknown key"));
        }
        // A soft-moe-pytorch state_dict as PyTorch saved it: say how to convert it.
        if st.entry("slot_embeds").is_some() && st.entry(MU).is_none() {
            return Err(Error::input(
                ctx,
                format!("a softmoe layer file (`{MU}`, ...)"),
                "a soft-moe-pytorch state_dict (`slot_embeds`); convert it first: \
                 softmoe convert --from soft-moe-pytorch IN.safetensors OUT.safetensors",
            ));
        }
        let w = Self::from_safetensors(st, "")?;
        let names = layer_tensor_names(w.variant);
        check_unused(st, |name| names.contains(&name), options)?;
        Ok(w)
    }

    /// Reads the layer stored under `prefix` (e.g. `Encoder/encoderblock_3/Moe/` inside a model, or
    /// empty), taking `gelu`/`normalize`/`dispatch_bfloat16`/`variant` from metadata; the file's
    /// other tensors are not looked at (a model's loader checks them;
    /// [`SoftMoeWeights::from_layer_file`] for a layer file).
    pub fn from_safetensors(st: &SafeTensors, prefix: &str) -> Result<Self> {
        let variant = match st.metadata().get("variant") {
            None => SoftMoeVariant::Vmoe,
            Some(s) => SoftMoeVariant::parse(s).ok_or_else(|| {
                Error::config(format!("{} metadata", st.context()), "variant", "`vmoe` or `soft-moe-pytorch`", format!("`{s}`"))
            })?,
        };
        Self::from_safetensors_as(st, prefix, variant)
    }

    /// As [`SoftMoeWeights::from_safetensors`], for a layer of `variant` (a model's config says
    /// which), whatever the metadata says.
    pub fn from_safetensors_as(st: &SafeTensors, prefix: &str, variant: SoftMoeVariant) -> Result<Self> {
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
        let (scale, norm_scale, slot_norm_scale) = match variant {
            SoftMoeVariant::Vmoe => {
                let scale = get(SCALE)?;
                if !(scale.shape.is_empty() || scale.shape == [1]) {
                    return Err(shape_err(SCALE, &scale.shape, "[] or [1]".into()));
                }
                (scale.data[0], Vec::new(), Vec::new())
            }
            SoftMoeVariant::SoftMoePytorch => {
                let gamma = |name: &str| -> Result<Vec<f32>> {
                    let t = get(name)?;
                    if t.shape != [d] {
                        return Err(shape_err(name, &t.shape, format!("[{d}] (d, from {MU})")));
                    }
                    Ok(t.data)
                };
                (1.0, gamma(NORM_SCALE)?, gamma(SLOT_NORM_SCALE)?)
            }
        };
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
            scale,
            w0: w0.data,
            b0: b0.data,
            w1: w1.data,
            b1: b1.data,
            gelu,
            normalize,
            dispatch_bfloat16,
            variant,
            norm_scale,
            slot_norm_scale,
        };
        w.validate().map_err(|e| match e {
            Error::NonFinite { name, index, .. } => Error::NonFinite { context: ctx.clone(), name: format!("{prefix}{name}"), index },
            other => {
                other.in_context(if prefix.is_empty() { ctx.clone() } else { format!("{ctx}: layer {}", prefix.trim_end_matches('/')) })
            }
        })?;
        Ok(w)
    }

    /// Serialises the layer as a safetensors file with SPEC names and metadata (`variant` only for
    /// the soft-moe-pytorch variant, so vmoe layers are written as before).
    pub fn to_safetensors(&self) -> Vec<u8> {
        let (d, n, p, h) = (self.d, self.n, self.p, self.h);
        let t = |shape: Vec<usize>, data: &[f32]| Tensor { shape, data: data.to_vec() };
        let mut tensors = vec![(MU, t(vec![d, n, p], &self.mu))];
        match self.variant {
            SoftMoeVariant::Vmoe => tensors.push((SCALE, t(vec![], &[self.scale]))),
            SoftMoeVariant::SoftMoePytorch => {
                tensors.push((NORM_SCALE, t(vec![d], &self.norm_scale)));
                tensors.push((SLOT_NORM_SCALE, t(vec![d], &self.slot_norm_scale)));
            }
        }
        tensors.extend([
            (W0, t(vec![n, d, h], &self.w0)),
            (B0, t(vec![n, h], &self.b0)),
            (W1, t(vec![n, h, d], &self.w1)),
            (B1, t(vec![n, d], &self.b1)),
        ]);
        let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (*n, t)).collect();
        let mut meta = BTreeMap::new();
        meta.insert("gelu".to_string(), self.gelu.name().to_string());
        meta.insert("normalize".to_string(), self.normalize.to_string());
        meta.insert("dispatch_bfloat16".to_string(), self.dispatch_bfloat16.to_string());
        if self.variant != SoftMoeVariant::Vmoe {
            meta.insert("variant".to_string(), self.variant.name().to_string());
        }
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

    /// An edit of a layer file's tensors and metadata.
    type Edit = dyn Fn(&mut Vec<(String, Tensor)>, &mut BTreeMap<String, String>);

    /// A soft-moe-pytorch variant layer's file, edited by `edit`.
    fn pytorch_file(edit: &Edit) -> SafeTensors {
        let w = crate::random::random_pytorch_layer(&mut Rng::new(4), 4, 2, 3, 5);
        let st = SafeTensors::parse(w.to_safetensors(), "mem").unwrap();
        let mut tensors: Vec<(String, Tensor)> = st.entries().iter().map(|e| (e.name.clone(), st.tensor_f32(&e.name).unwrap())).collect();
        let mut metadata = st.metadata().clone();
        edit(&mut tensors, &mut metadata);
        let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        SafeTensors::parse(serialize(&refs, &metadata), "layer.safetensors").unwrap()
    }

    #[test]
    fn the_soft_moe_pytorch_variant_is_read_from_the_metadata_with_its_two_norm_scales() {
        let w = SoftMoeWeights::from_layer_file(&pytorch_file(&|_, _| {}), LoadOptions::default()).unwrap();
        assert_eq!(
            (w.variant, w.config().variant, w.scale, w.norm_scale.len(), w.slot_norm_scale.len()),
            (SoftMoeVariant::SoftMoePytorch, SoftMoeVariant::SoftMoePytorch, 1.0, 4, 4)
        );
        assert_eq!(SafeTensors::parse(w.to_safetensors(), "again").unwrap().metadata()["variant"], "soft-moe-pytorch");
        // vmoe layers are written as before: no `variant` key.
        assert!(!layer_file(&[], &[]).metadata().contains_key("variant"));
        let refused = |edit: &Edit| SoftMoeWeights::from_layer_file(&pytorch_file(edit), LoadOptions::default()).unwrap_err();
        match refused(&|_, m| {
            m.insert("variant".into(), "pytorch".into());
        }) {
            Error::Config { context, key, expected, found } => assert_eq!(
                (context.as_str(), key.as_str(), expected.as_str(), found.as_str()),
                ("layer.safetensors metadata", "variant", "`vmoe` or `soft-moe-pytorch`", "`pytorch`")
            ),
            other => panic!("expected Error::Config, got {other:?}"),
        }
        let e = refused(&|t, _| t.retain(|(n, _)| n != SLOT_NORM_SCALE));
        assert!(matches!(&e, Error::MissingTensor { name, .. } if name == SLOT_NORM_SCALE), "{e:?}");
        let e = refused(&|t, _| t.iter_mut().filter(|(n, _)| n == NORM_SCALE).for_each(|(_, v)| *v = Tensor::zeros(vec![5])));
        assert!(
            matches!(&e, Error::Shape { name, found, expected, .. } if name == NORM_SCALE && found == &[5] && expected.starts_with("[4]")),
            "{e:?}"
        );
        // A vmoe scale in a soft-moe-pytorch layer would be dropped: refused by name.
        let e = refused(&|t, _| t.push((SCALE.into(), Tensor::zeros(vec![]))));
        assert!(matches!(&e, Error::UnusedTensor { name, .. } if name == SCALE), "{e:?}");
        // …and the scales without the variant are vmoe's missing `Router/scale`.
        let e = refused(&|_, m| {
            m.remove("variant");
        });
        assert!(matches!(&e, Error::MissingTensor { name, .. } if name == SCALE), "{e:?}");
        for (key, value) in [("normalize", "false"), ("dispatch_bfloat16", "true")] {
            let e = refused(&|_, m| {
                m.insert(key.into(), value.into());
            });
            assert!(matches!(&e, Error::Config { context, key: k, .. } if context == "layer.safetensors" && k == key), "{key}: {e:?}");
        }
    }

    #[test]
    fn a_soft_moe_pytorch_state_dict_is_refused_with_the_command_that_converts_it() {
        let st =
            SafeTensors::parse(serialize(&[("slot_embeds", &Tensor::zeros(vec![2, 1, 4]))], &BTreeMap::new()), "sd.safetensors").unwrap();
        let e = SoftMoeWeights::from_layer_file(&st, LoadOptions::default()).unwrap_err().to_string();
        assert!(
            e.starts_with("sd.safetensors: expected a softmoe layer file") && e.contains("softmoe convert --from soft-moe-pytorch"),
            "{e}"
        );
    }

    #[test]
    fn validate_refuses_what_soft_moe_pytorch_does_not_have() {
        let w = crate::random::random_pytorch_layer(&mut Rng::new(5), 4, 2, 1, 3);
        assert!(w.validate().is_ok());
        let bad = [
            SoftMoeWeights { scale: 2.0, ..w.clone() },
            SoftMoeWeights { normalize: false, ..w.clone() },
            SoftMoeWeights { dispatch_bfloat16: true, ..w.clone() },
            SoftMoeWeights { slot_norm_scale: vec![1.0; 3], ..w.clone() },
            SoftMoeWeights { variant: SoftMoeVariant::Vmoe, ..w.clone() },
        ];
        for (i, b) in bad.iter().enumerate() {
            assert!(matches!(b.validate(), Err(Error::Config { .. })), "case {i}: {:?}", b.validate());
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
