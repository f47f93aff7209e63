//! Converters from other libraries' weight files to softmoe's (`softmoe convert`).
//!
//! soft-moe-pytorch 0.1.9's `SoftMoE` (PyPI `soft-moe-pytorch`, RMSNorm and FeedForward experts,
//! its defaults), `safetensors.torch.save_file(layer.state_dict(), IN)`, becomes a layer of the
//! soft-moe-pytorch variant (`SoftMoeVariant::SoftMoePytorch`), d = dim, n = num_experts,
//! p = num_slots, h = int(dim · expert_mult):
//!
//! | soft-moe-pytorch | softmoe | layout |
//! |---|---|---|
//! | `slot_embeds` [n, p, d] | `Router/mu` [d, n, p] | `.permute(2, 0, 1)`: slot j = e·p + s is column j |
//! | `norm.gamma` [d] | `Norm/scale` [d] | |
//! | `slot_norm.gamma` [d] | `SlotNorm/scale` [d] | |
//! | `experts.experts.{e}.0.weight` [h, d] | `Mlp/Dense_0/kernel` [n, d, h], expert e | transposed (torch's Linear is [out, in]) |
//! | `experts.experts.{e}.0.bias` [h] | `Mlp/Dense_0/bias` [n, h], row e | |
//! | `experts.experts.{e}.3.weight` [d, h] | `Mlp/Dense_1/kernel` [n, h, d], expert e | transposed |
//! | `experts.experts.{e}.3.bias` [d] | `Mlp/Dense_1/bias` [n, d], row e | |
//!
//! with `gelu` = `erf` (`nn.GELU()`), no `Router/scale` (the layer has none). Anything else in the
//! file is an error naming it: `norm.beta` (`use_layernorm=True`), GLU experts (`geglu=True`), a
//! tensor of a larger model.

use std::collections::BTreeSet;

use crate::config::{Gelu, SoftMoeVariant};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::weights::{SafeTensors, SoftMoeWeights};

/// What `softmoe convert --from` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvertFrom {
    /// A soft-moe-pytorch 0.1.9 `SoftMoE` layer's state_dict.
    SoftMoePytorch,
}

impl ConvertFrom {
    pub const ALL: [ConvertFrom; 1] = [ConvertFrom::SoftMoePytorch];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == s)
    }

    pub fn name(self) -> &'static str {
        match self {
            ConvertFrom::SoftMoePytorch => "soft-moe-pytorch",
        }
    }
}

const SOFT_MOE_PYTORCH_TENSORS: &str = "soft-moe-pytorch's `SoftMoE` tensors (`slot_embeds`, `norm.gamma`, `slot_norm.gamma`, \
     `experts.experts.{e}.0.weight`/`.0.bias`/`.3.weight`/`.3.bias` for e < num_experts)";

/// Reads `name` as f32 with finite values, every error naming the file and the tensor.
fn tensor(st: &SafeTensors, name: &str) -> Result<Tensor> {
    let t = st.tensor_f32(name).map_err(|e| match e {
        Error::DType { context, name, found, .. } => {
            Error::DType { context, name, found, expected: "F32 (save `model.float().state_dict()`)".into() }
        }
        other => other,
    })?;
    if let Some(index) = t.data.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite { context: st.context().to_string(), name: name.to_string(), index });
    }
    Ok(t)
}

/// Reads a file's tensors, recording each name read so that the rest can be refused.
struct Reader<'a> {
    st: &'a SafeTensors,
    used: BTreeSet<String>,
}

impl Reader<'_> {
    /// Tensor `name`, of shape `want` when given (`what` says where that comes from).
    fn get(&mut self, name: &str, want: Option<&[usize]>, what: &str) -> Result<Tensor> {
        let t = tensor(self.st, name)?;
        if let Some(want) = want {
            if t.shape != want {
                return Err(Error::Shape {
                    context: self.st.context().to_string(),
                    name: name.to_string(),
                    found: t.shape.clone(),
                    expected: format!("{want:?} ({what})"),
                });
            }
        }
        self.used.insert(name.to_string());
        Ok(t)
    }
}

/// A soft-moe-pytorch 0.1.9 `SoftMoE` state_dict (the module's own: names without a prefix) as a
/// layer of the soft-moe-pytorch variant; the table in this module's documentation says what goes
/// where. Every tensor of the file must be one of these.
pub fn soft_moe_pytorch_layer(st: &SafeTensors) -> Result<SoftMoeWeights> {
    let ctx = st.context();
    if st.entry(super::soft_moe::MU).is_some() {
        return Err(Error::input(
            ctx,
            "a soft-moe-pytorch state_dict (`slot_embeds`, ...)",
            "a softmoe layer file (`Router/mu`), which needs no conversion",
        ));
    }
    if st.entry("slot_embeds").is_none() {
        if let Some(e) = st.entries().iter().find(|e| e.name.ends_with(".slot_embeds")) {
            let module = e.name.trim_end_matches(".slot_embeds");
            return Err(Error::input(
                ctx,
                "a `SoftMoE` module's own state_dict (`slot_embeds` at the top level)",
                format!("`{}`, a larger model's: save `model.{module}.state_dict()` instead", e.name),
            ));
        }
    }
    let mut r = Reader { st, used: BTreeSet::new() };
    let slots = r.get("slot_embeds", None, "")?;
    let [n, p, d] = slots.shape[..] else {
        return Err(Error::Shape {
            context: ctx.to_string(),
            name: "slot_embeds".into(),
            found: slots.shape.clone(),
            expected: "[num_experts, num_slots, dim]".into(),
        });
    };
    let norm = r.get("norm.gamma", Some(&[d]), "dim, from slot_embeds")?;
    let slot_norm = r.get("slot_norm.gamma", Some(&[d]), "dim, from slot_embeds")?;
    // h from expert 0's first Linear; every expert must agree.
    let first = r.get("experts.experts.0.0.weight", None, "")?;
    let h = match first.shape[..] {
        [h, dd] if dd == d && h > 0 => h,
        _ => {
            return Err(Error::Shape {
                context: ctx.to_string(),
                name: "experts.experts.0.0.weight".into(),
                found: first.shape.clone(),
                expected: format!("[hidden, {d}] (torch's Linear(dim, hidden) weight is [out, in])"),
            })
        }
    };
    let (mut w0, mut b0, mut w1, mut b1) =
        (Vec::with_capacity(n * d * h), Vec::with_capacity(n * h), Vec::with_capacity(n * h * d), Vec::with_capacity(n * d));
    for e in 0..n {
        let pre = format!("experts.experts.{e}");
        let lin0 = if e == 0 { first.clone() } else { r.get(&format!("{pre}.0.weight"), Some(&[h, d]), "hidden, dim: as expert 0")? };
        let bias0 = r.get(&format!("{pre}.0.bias"), Some(&[h]), "hidden, from experts.experts.0.0.weight")?;
        let lin1 = r.get(&format!("{pre}.3.weight"), None, "")?;
        if lin1.shape != [d, h] {
            // GLUFeedForward (geglu=True) has a first Linear twice as wide as the second's input.
            let glu = lin1.shape.len() == 2 && lin1.shape[0] == d && 2 * lin1.shape[1] == h;
            let why = if glu {
                "; half its first Linear's width: GLU experts (`geglu=True`), which softmoe does not run".to_string()
            } else {
                String::new()
            };
            return Err(Error::Shape {
                context: ctx.to_string(),
                name: format!("{pre}.3.weight"),
                found: lin1.shape.clone(),
                expected: format!("[{d}, {h}] (dim, hidden: Linear(hidden, dim), [out, in]){why}"),
            });
        }
        let bias1 = r.get(&format!("{pre}.3.bias"), Some(&[d]), "dim, from slot_embeds")?;
        // torch's [out, in] to softmoe's [in, out].
        w0.extend(transpose(&lin0.data, h, d));
        b0.extend(bias0.data);
        w1.extend(transpose(&lin1.data, d, h));
        b1.extend(bias1.data);
    }
    if let Some(e) = st.entries().iter().find(|e| !r.used.contains(&e.name)) {
        return Err(Error::UnknownTensor {
            context: ctx.to_string(),
            name: e.name.clone(),
            shape: e.shape.clone(),
            expected: SOFT_MOE_PYTORCH_TENSORS.into(),
            hint: soft_moe_pytorch_hint(&e.name, n),
        });
    }
    // slot_embeds [n, p, d] → mu [d, n, p]: mu[k, e, s] = slot_embeds[e, s, k].
    let mu = transpose(&slots.data, n * p, d);
    let w = SoftMoeWeights {
        d,
        n,
        p,
        h,
        mu,
        scale: 1.0,
        w0,
        b0,
        w1,
        b1,
        gelu: Gelu::Erf,
        normalize: true,
        dispatch_bfloat16: false,
        variant: SoftMoeVariant::SoftMoePytorch,
        norm_scale: norm.data,
        slot_norm_scale: slot_norm.data,
    };
    w.validate().map_err(|e| e.in_context(ctx))?;
    Ok(w)
}

/// What an unknown tensor of a soft-moe-pytorch file is, where its name tells.
fn soft_moe_pytorch_hint(name: &str, n: usize) -> String {
    let hint = if name == "norm.beta" || name == "slot_norm.beta" {
        "LayerNorm instead of RMSNorm (`use_layernorm=True`), which softmoe does not run".to_string()
    } else if let Some(rest) = name.strip_prefix("experts.experts.") {
        match rest.split('.').next().and_then(|e| e.parse::<usize>().ok()) {
            Some(e) if e >= n => format!("expert {e}, but `slot_embeds` has {n} experts"),
            _ => "not a layer of soft-moe-pytorch's FeedForward expert (Linear, GELU, Dropout, Linear)".to_string(),
        }
    } else {
        return String::new();
    };
    format!(" ({hint})")
}

/// a [rows, cols] row-major → [cols, rows].
fn transpose(a: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; a.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = a[r * cols + c];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::weights::safetensors::serialize;
    use std::collections::BTreeMap;

    /// A soft-moe-pytorch state_dict of d=3, n=2, p=2, h=5 with distinct values everywhere
    /// (value = 1000·tensor + flat index), edited by `edit`.
    fn state_dict(edit: impl FnOnce(&mut Vec<(String, Tensor)>)) -> SafeTensors {
        let (d, n, p, h) = (3, 2, 2, 5);
        let mut k = 0.0;
        let mut t = |shape: Vec<usize>| {
            k += 1000.0;
            let len = shape.iter().product::<usize>();
            Tensor { shape, data: (0..len).map(|i| k + i as f32).collect() }
        };
        let mut tensors = vec![
            ("slot_embeds".to_string(), t(vec![n, p, d])),
            ("norm.gamma".to_string(), t(vec![d])),
            ("slot_norm.gamma".to_string(), t(vec![d])),
        ];
        for e in 0..n {
            tensors.push((format!("experts.experts.{e}.0.weight"), t(vec![h, d])));
            tensors.push((format!("experts.experts.{e}.0.bias"), t(vec![h])));
            tensors.push((format!("experts.experts.{e}.3.weight"), t(vec![d, h])));
            tensors.push((format!("experts.experts.{e}.3.bias"), t(vec![d])));
        }
        edit(&mut tensors);
        let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        SafeTensors::parse(serialize(&refs, &BTreeMap::new()), "sd.safetensors").unwrap()
    }

    #[test]
    fn names_and_layouts_are_mapped_element_for_element() {
        let st = state_dict(|_| {});
        let w = soft_moe_pytorch_layer(&st).unwrap();
        assert_eq!((w.d, w.n, w.p, w.h, w.variant, w.gelu, w.scale), (3, 2, 2, 5, SoftMoeVariant::SoftMoePytorch, Gelu::Erf, 1.0));
        let get = |name: &str| st.tensor_f32(name).unwrap().data;
        let slots = get("slot_embeds");
        for (k, e, s) in (0..3).flat_map(|k| (0..2).flat_map(move |e| (0..2).map(move |s| (k, e, s)))) {
            // mu [d, n, p] = slot_embeds [n, p, d].permute(2, 0, 1)
            assert_eq!(w.mu[(k * 2 + e) * 2 + s], slots[(e * 2 + s) * 3 + k], "mu[{k}, {e}, {s}]");
        }
        assert_eq!((w.norm_scale.clone(), w.slot_norm_scale.clone()), (get("norm.gamma"), get("slot_norm.gamma")));
        for e in 0..2 {
            let (l0, l1) = (get(&format!("experts.experts.{e}.0.weight")), get(&format!("experts.experts.{e}.3.weight")));
            for (i, j) in (0..3).flat_map(|i| (0..5).map(move |j| (i, j))) {
                // Dense_0/kernel[e][i, j] = 0.weight[j, i]; Dense_1/kernel[e][j, i] = 3.weight[i, j].
                assert_eq!(w.w0[(e * 3 + i) * 5 + j], l0[j * 3 + i]);
                assert_eq!(w.w1[(e * 5 + j) * 3 + i], l1[i * 5 + j]);
            }
            assert_eq!(w.b0[e * 5..(e + 1) * 5], get(&format!("experts.experts.{e}.0.bias"))[..]);
            assert_eq!(w.b1[e * 3..(e + 1) * 3], get(&format!("experts.experts.{e}.3.bias"))[..]);
        }
    }

    fn refusal(edit: impl FnOnce(&mut Vec<(String, Tensor)>)) -> Error {
        soft_moe_pytorch_layer(&state_dict(edit)).expect_err("refused")
    }

    fn replace(tensors: &mut [(String, Tensor)], name: &str, t: Tensor) {
        tensors.iter_mut().find(|(n, _)| n == name).unwrap().1 = t;
    }

    #[test]
    fn anything_unexpected_is_refused_by_name() {
        let e = refusal(|t| t.push(("norm.beta".into(), Tensor::zeros(vec![3]))));
        assert!(
            matches!(&e, Error::UnknownTensor { context, name, shape, hint, .. }
            if context == "sd.safetensors" && name == "norm.beta" && shape == &[3] && hint.contains("use_layernorm=True")),
            "{e:?}"
        );
        let e = refusal(|t| t.push(("experts.experts.2.0.bias".into(), Tensor::zeros(vec![5]))));
        assert!(e.to_string().contains("unknown tensor `experts.experts.2.0.bias` [5]") && e.to_string().contains("expert 2, but"), "{e}");
        let e = refusal(|t| t.push(("head.weight".into(), Tensor::zeros(vec![1]))));
        assert!(matches!(&e, Error::UnknownTensor { name, hint, .. } if name == "head.weight" && hint.is_empty()), "{e:?}");
        let e = refusal(|t| t.retain(|(n, _)| n != "experts.experts.1.3.bias"));
        assert!(matches!(&e, Error::MissingTensor { context, name } if context == "sd.safetensors" && name == "experts.experts.1.3.bias"));
        let e = refusal(|t| replace(t, "slot_norm.gamma", Tensor::zeros(vec![4])));
        assert!(matches!(&e, Error::Shape { name, found, .. } if name == "slot_norm.gamma" && found == &[4]), "{e:?}");
        let e = refusal(|t| replace(t, "experts.experts.1.0.weight", Tensor::zeros(vec![5, 4])));
        assert!(
            matches!(&e, Error::Shape { name, expected, .. } if name == "experts.experts.1.0.weight" && expected.starts_with("[5, 3]"))
        );
        // GLU experts: the first Linear is twice as wide as the second's input.
        let e = refusal(|t| {
            for k in 0..2 {
                replace(t, &format!("experts.experts.{k}.0.weight"), Tensor::zeros(vec![4, 3]));
                replace(t, &format!("experts.experts.{k}.0.bias"), Tensor::zeros(vec![4]));
                replace(t, &format!("experts.experts.{k}.3.weight"), Tensor::zeros(vec![3, 2]));
            }
        });
        assert!(e.to_string().contains("`geglu=True`"), "{e}");
        let mut nan = Tensor::zeros(vec![3]);
        nan.data[2] = f32::NAN;
        let e = refusal(|t| replace(t, "norm.gamma", nan));
        assert!(matches!(&e, Error::NonFinite { name, index: 2, .. } if name == "norm.gamma"), "{e:?}");
        // A prefixed state_dict and an already converted file say what to do.
        let e = refusal(|t| t.iter_mut().for_each(|(n, _)| *n = format!("blocks.3.moe.{n}")));
        assert!(e.to_string().contains("save `model.blocks.3.moe.state_dict()`"), "{e}");
        let converted = soft_moe_pytorch_layer(&state_dict(|_| {})).unwrap().to_safetensors();
        let e = soft_moe_pytorch_layer(&SafeTensors::parse(converted, "layer.safetensors").unwrap()).unwrap_err();
        assert!(e.to_string().contains("needs no conversion"), "{e}");
    }

    #[test]
    fn a_half_precision_state_dict_is_refused_with_what_to_save() {
        let header = br#"{"slot_embeds":{"dtype":"BF16","shape":[1,1,2],"data_offsets":[0,4]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(&[0u8; 4]);
        let e = soft_moe_pytorch_layer(&SafeTensors::parse(bytes, "sd.safetensors").unwrap()).unwrap_err();
        assert!(
            matches!(&e, Error::DType { name, found, expected, .. }
            if name == "slot_embeds" && found == "BF16" && expected.contains("model.float()")),
            "{e:?}"
        );
    }

    #[test]
    fn the_converted_layer_round_trips_through_a_layer_file() {
        let w = soft_moe_pytorch_layer(&state_dict(|_| {})).unwrap();
        let st = SafeTensors::parse(w.to_safetensors(), "layer.safetensors").unwrap();
        assert_eq!(st.metadata().get("variant").map(String::as_str), Some("soft-moe-pytorch"));
        assert!(st.entry("Router/scale").is_none());
        let again = SoftMoeWeights::from_layer_file(&st, Default::default()).unwrap();
        assert_eq!(again, w);
    }
}
