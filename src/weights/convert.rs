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
//!
//! torchvision's `VisionTransformer` (`torchvision.models.vision_transformer`), any of whose blocks
//! may have its `mlp` replaced by such a `SoftMoE`, `save_file(model.state_dict(), IN)`, becomes a
//! ViT (config.json + model.safetensors, vmoe's block names) with `classifier` `token`, erf GELU,
//! LayerNorm eps 1e-6 (torchvision's `norm_layer` default) and `moe_variant` `soft-moe-pytorch`.
//! H = `num_heads` (not in the state_dict), dh = d/H, block k's prefix `encoder.layers.encoder_layer_{k}.`:
//!
//! | torchvision | softmoe | layout |
//! |---|---|---|
//! | `conv_proj.weight` [d, C, P, P], `.bias` | `embedding/kernel` [P, P, C, d], `/bias` | `.permute(2, 3, 1, 0)` |
//! | `class_token` [1, 1, d] | `cls` | |
//! | `encoder.pos_embedding` [1, m + 1, d] | `Encoder/posembed_input/pos_embedding` | image_size = P·√m |
//! | `ln_1.{weight,bias}` | `LayerNorm_0/{scale,bias}` | |
//! | `self_attention.in_proj_weight` [3d, d] | `SelfAttention/{query,key,value}/kernel` [d, H, dh] | rows [0, d), [d, 2d), [2d, 3d), each transposed |
//! | `self_attention.in_proj_bias` [3d] | `SelfAttention/{query,key,value}/bias` [H, dh] | |
//! | `self_attention.out_proj.weight` [d, d], `.bias` | `SelfAttention/out/kernel` [H, dh, d], `/bias` | transposed |
//! | `ln_2.{weight,bias}` | `LayerNorm_1/{scale,bias}` | |
//! | `mlp.0.{weight,bias}`, `mlp.3.{weight,bias}` (or the older `mlp.linear_1`, `mlp.linear_2`) | `Mlp/Dense_0`, `Mlp/Dense_1` | transposed |
//! | `mlp.slot_embeds`, `mlp.norm.gamma`, … (a `SoftMoE`) | `Moe/...` | as the layer's table |
//! | `encoder.ln.{weight,bias}` | `Encoder/encoder_norm/{scale,bias}` | |
//! | `heads.head.weight` [classes, d], `.bias` | `head/kernel` [d, classes], `/bias` | transposed |

use std::collections::BTreeSet;

use crate::config::{Gelu, Pooling, SoftMoeVariant, VitConfig, LAYER_NORM_EPS};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::weights::{BlockNames, LoadOptions, SafeTensors, SoftMoeWeights, VitWeights};

/// What `softmoe convert --from` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConvertFrom {
    /// A soft-moe-pytorch 0.1.9 `SoftMoE` layer's state_dict.
    SoftMoePytorch,
    /// A torchvision `VisionTransformer`'s state_dict, MLPs optionally replaced by `SoftMoE`s.
    TorchvisionVit,
}

impl ConvertFrom {
    pub const ALL: [ConvertFrom; 2] = [ConvertFrom::SoftMoePytorch, ConvertFrom::TorchvisionVit];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == s)
    }

    pub fn name(self) -> &'static str {
        match self {
            ConvertFrom::SoftMoePytorch => "soft-moe-pytorch",
            ConvertFrom::TorchvisionVit => "torchvision-vit",
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
    if st.entry("conv_proj.weight").is_some() && st.entry("class_token").is_some() {
        return Err(Error::input(
            ctx,
            "a `SoftMoE` layer's state_dict (`slot_embeds`, ...)",
            "a torchvision ViT's (`conv_proj.weight`, `class_token`): convert it with `--from torchvision-vit --num-heads H`",
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
    let w = soft_moe_pytorch_at(&mut r, "")?;
    if let Some(e) = st.entries().iter().find(|e| !r.used.contains(&e.name)) {
        return Err(Error::UnknownTensor {
            context: ctx.to_string(),
            name: e.name.clone(),
            shape: e.shape.clone(),
            expected: SOFT_MOE_PYTORCH_TENSORS.into(),
            hint: soft_moe_pytorch_hint(&e.name, w.n),
        });
    }
    Ok(w)
}

/// The `SoftMoE` whose tensors are named `{prefix}slot_embeds`, … (`prefix` empty for a layer's
/// own state_dict, `encoder.layers.encoder_layer_1.mlp.` inside a torchvision ViT).
fn soft_moe_pytorch_at(r: &mut Reader, prefix: &str) -> Result<SoftMoeWeights> {
    let ctx = r.st.context().to_string();
    let slots = r.get(&format!("{prefix}slot_embeds"), None, "")?;
    let [n, p, d] = slots.shape[..] else {
        return Err(Error::Shape {
            context: ctx.to_string(),
            name: format!("{prefix}slot_embeds"),
            found: slots.shape.clone(),
            expected: "[num_experts, num_slots, dim]".into(),
        });
    };
    let norm = r.get(&format!("{prefix}norm.gamma"), Some(&[d]), "dim, from slot_embeds")?;
    let slot_norm = r.get(&format!("{prefix}slot_norm.gamma"), Some(&[d]), "dim, from slot_embeds")?;
    // h from expert 0's first Linear; every expert must agree.
    let first = r.get(&format!("{prefix}experts.experts.0.0.weight"), None, "")?;
    let h = match first.shape[..] {
        [h, dd] if dd == d && h > 0 => h,
        _ => {
            return Err(Error::Shape {
                context: ctx.to_string(),
                name: format!("{prefix}experts.experts.0.0.weight"),
                found: first.shape.clone(),
                expected: format!("[hidden, {d}] (torch's Linear(dim, hidden) weight is [out, in])"),
            })
        }
    };
    let (mut w0, mut b0, mut w1, mut b1) =
        (Vec::with_capacity(n * d * h), Vec::with_capacity(n * h), Vec::with_capacity(n * h * d), Vec::with_capacity(n * d));
    for e in 0..n {
        let pre = format!("{prefix}experts.experts.{e}");
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
    w.validate().map_err(|e| e.in_context(&ctx))?;
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

const TORCHVISION_VIT_TENSORS: &str = "torchvision `VisionTransformer` tensors (`class_token`, `conv_proj.*`, `encoder.pos_embedding`, \
     `encoder.layers.encoder_layer_{k}.{ln_1,self_attention,ln_2,mlp}.*` with a FeedForward or soft-moe-pytorch `mlp`, \
     `encoder.ln.*`, `heads.head.*`)";

/// A torchvision `VisionTransformer` state_dict, any block's `mlp` possibly a soft-moe-pytorch
/// `SoftMoE`, as softmoe ViT weights (config included) under vmoe's block names; the table in this
/// module's documentation says what goes where. `num_heads` is the model's (the state_dict does
/// not record it). Every tensor of the file must be one of these; the result is read back through
/// the strict loader ([`VitWeights::from_parts`]) before it is returned.
pub fn torchvision_vit(st: &SafeTensors, num_heads: usize) -> Result<VitWeights> {
    let ctx = st.context().to_string();
    if st.entry("Encoder/posembed_input/pos_embedding").is_some() {
        return Err(Error::input(
            &ctx,
            "a torchvision VisionTransformer state_dict (`class_token`, `conv_proj.weight`, ...)",
            "a softmoe or vmoe model file (`Encoder/posembed_input/pos_embedding`), which needs no conversion",
        ));
    }
    if st.entry("conv_proj.weight").is_none() && st.entries().iter().any(|e| e.name.starts_with("conv_proj.")) {
        return Err(Error::input(
            &ctx,
            "a patch embedding `conv_proj.weight` [d, C, P, P]",
            "a convolutional stem (`conv_stem_configs`), which softmoe does not run",
        ));
    }
    let shape_err = |name: &str, found: &[usize], expected: String| Error::Shape {
        context: ctx.clone(),
        name: name.into(),
        found: found.to_vec(),
        expected,
    };
    let mut r = Reader { st, used: BTreeSet::new() };
    let mut out: Vec<(String, Tensor)> = Vec::new();
    let mut put = |name: &str, shape: Vec<usize>, data: Vec<f32>| out.push((name.to_string(), Tensor { shape, data }));

    let conv = r.get("conv_proj.weight", None, "")?;
    let (d, ch, patch) = match conv.shape[..] {
        [d, c, p, q] if p == q && d > 0 && c > 0 && p > 0 => (d, c, p),
        _ => return Err(shape_err("conv_proj.weight", &conv.shape, "[hidden_dim, channels, patch, patch]".into())),
    };
    if num_heads == 0 || !d.is_multiple_of(num_heads) {
        return Err(Error::input("num_heads", format!("a divisor of hidden_dim {d} (from conv_proj.weight)"), num_heads));
    }
    let dh = d / num_heads;
    // conv_proj.weight[o, c, py, px] → embedding/kernel[py, px, c, o].
    let mut kernel = vec![0.0; conv.data.len()];
    for (i, &v) in conv.data.iter().enumerate() {
        let (o, c, py, px) = (i / (ch * patch * patch), i / (patch * patch) % ch, i / patch % patch, i % patch);
        kernel[((py * patch + px) * ch + c) * d + o] = v;
    }
    put("embedding/kernel", vec![patch, patch, ch, d], kernel);
    put("embedding/bias", vec![d], r.get("conv_proj.bias", Some(&[d]), "hidden_dim, from conv_proj.weight")?.data);
    put("cls", vec![1, 1, d], r.get("class_token", Some(&[1, 1, d]), "1, 1, hidden_dim")?.data);
    let pos = r.get("encoder.pos_embedding", None, "")?;
    let tokens = match pos.shape[..] {
        [1, t, dd] if dd == d && t >= 2 => t,
        _ => return Err(shape_err("encoder.pos_embedding", &pos.shape, format!("[1, patches + 1, {d}]"))),
    };
    let grid = (1..=tokens).find(|g| g * g >= tokens - 1).unwrap_or(1);
    if grid * grid != tokens - 1 {
        return Err(shape_err(
            "encoder.pos_embedding",
            &pos.shape,
            format!("[1, g² + 1, {d}]: a square grid of patches and the class token"),
        ));
    }
    put("Encoder/posembed_input/pos_embedding", vec![1, tokens, d], pos.data);

    let names = BlockNames::Vmoe;
    let num_layers = (0..).take_while(|k| st.entry(&format!("encoder.layers.encoder_layer_{k}.ln_1.weight")).is_some()).count();
    if num_layers == 0 {
        return Err(Error::MissingTensor { context: ctx.clone(), name: "encoder.layers.encoder_layer_0.ln_1.weight".into() });
    }
    let (mut mlp_dim, mut moe): (Option<usize>, Option<(usize, usize, usize)>) = (None, None);
    let mut moe_layers = Vec::new();
    for k in 0..num_layers {
        let tv = format!("encoder.layers.encoder_layer_{k}.");
        let sm = format!("Encoder/encoderblock_{k}/");
        for (from, to) in [("ln_1", "LayerNorm_0"), ("ln_2", names.mlp_norm())] {
            for (torch, flax) in [("weight", "scale"), ("bias", "bias")] {
                put(&format!("{sm}{to}/{flax}"), vec![d], r.get(&format!("{tv}{from}.{torch}"), Some(&[d]), "hidden_dim")?.data);
            }
        }
        let att = format!("{sm}{}/", names.attention());
        let w_in = r.get(&format!("{tv}self_attention.in_proj_weight"), Some(&[3 * d, d]), "3·hidden_dim, hidden_dim: q, k, v stacked")?;
        let b_in = r.get(&format!("{tv}self_attention.in_proj_bias"), Some(&[3 * d]), "3·hidden_dim")?;
        for (i, q) in ["query", "key", "value"].into_iter().enumerate() {
            // Rows [i·d, (i+1)·d) are W_q (or W_k, W_v), [out, in]: kernel [in, H, dh] is its transpose.
            put(&format!("{att}{q}/kernel"), vec![d, num_heads, dh], transpose(&w_in.data[i * d * d..(i + 1) * d * d], d, d));
            put(&format!("{att}{q}/bias"), vec![num_heads, dh], b_in.data[i * d..(i + 1) * d].to_vec());
        }
        let w_out = r.get(&format!("{tv}self_attention.out_proj.weight"), Some(&[d, d]), "hidden_dim, hidden_dim")?;
        put(&format!("{att}out/kernel"), vec![num_heads, dh, d], transpose(&w_out.data, d, d));
        put(&format!("{att}out/bias"), vec![d], r.get(&format!("{tv}self_attention.out_proj.bias"), Some(&[d]), "hidden_dim")?.data);
        if st.entry(&format!("{tv}mlp.slot_embeds")).is_some() {
            let w = soft_moe_pytorch_at(&mut r, &format!("{tv}mlp."))?;
            if w.d != d {
                return Err(shape_err(
                    &format!("{tv}mlp.slot_embeds"),
                    &[w.n, w.p, w.d],
                    format!("[num_experts, num_slots, {d}] (hidden_dim)"),
                ));
            }
            let shape = (w.n, w.p, w.h);
            if *moe.get_or_insert(shape) != shape {
                let (n, p, h) = moe.unwrap_or(shape);
                return Err(Error::input(
                    format!("{ctx}: block {k}'s SoftMoE"),
                    format!("{n} experts × {p} slots, hidden {h}, as the first SoftMoE block's"),
                    format!("{} × {}, hidden {}", w.n, w.p, w.h),
                ));
            }
            moe_layers.push(k);
            let moe_pre = format!("{sm}Moe/");
            put(&format!("{moe_pre}Router/mu"), vec![d, w.n, w.p], w.mu);
            put(&format!("{moe_pre}Norm/scale"), vec![d], w.norm_scale);
            put(&format!("{moe_pre}SlotNorm/scale"), vec![d], w.slot_norm_scale);
            put(&format!("{moe_pre}Mlp/Dense_0/kernel"), vec![w.n, d, w.h], w.w0);
            put(&format!("{moe_pre}Mlp/Dense_0/bias"), vec![w.n, w.h], w.b0);
            put(&format!("{moe_pre}Mlp/Dense_1/kernel"), vec![w.n, w.h, d], w.w1);
            put(&format!("{moe_pre}Mlp/Dense_1/bias"), vec![w.n, d], w.b1);
        } else {
            // torchvision's MLPBlock: Linear (0), GELU, Dropout, Linear (3), Dropout; before
            // torchvision 0.13 the Linears were `linear_1` and `linear_2`.
            let legacy = st.entry(&format!("{tv}mlp.linear_1.weight")).is_some();
            let [l0, l1] = if legacy { ["linear_1", "linear_2"] } else { ["0", "3"] };
            let w0 = r.get(&format!("{tv}mlp.{l0}.weight"), None, "")?;
            let h = match w0.shape[..] {
                [h, dd] if dd == d && h > 0 => h,
                _ => return Err(shape_err(&format!("{tv}mlp.{l0}.weight"), &w0.shape, format!("[mlp_dim, {d}]"))),
            };
            if *mlp_dim.get_or_insert(h) != h {
                return Err(shape_err(
                    &format!("{tv}mlp.{l0}.weight"),
                    &w0.shape,
                    format!("[{}, {d}]: every block's mlp_dim is the first's", mlp_dim.unwrap_or(h)),
                ));
            }
            let mlp = format!("{sm}{}/", names.dense_mlp());
            put(&format!("{mlp}Dense_0/kernel"), vec![d, h], transpose(&w0.data, h, d));
            put(&format!("{mlp}Dense_0/bias"), vec![h], r.get(&format!("{tv}mlp.{l0}.bias"), Some(&[h]), "mlp_dim")?.data);
            let w1 = r.get(&format!("{tv}mlp.{l1}.weight"), Some(&[d, h]), "hidden_dim, mlp_dim")?;
            put(&format!("{mlp}Dense_1/kernel"), vec![h, d], transpose(&w1.data, d, h));
            put(&format!("{mlp}Dense_1/bias"), vec![d], r.get(&format!("{tv}mlp.{l1}.bias"), Some(&[d]), "hidden_dim")?.data);
        }
    }
    put("Encoder/encoder_norm/scale", vec![d], r.get("encoder.ln.weight", Some(&[d]), "hidden_dim")?.data);
    put("Encoder/encoder_norm/bias", vec![d], r.get("encoder.ln.bias", Some(&[d]), "hidden_dim")?.data);
    if let Some(e) = st.entries().iter().find(|e| e.name.starts_with("heads.pre_logits.")) {
        return Err(Error::UnknownTensor {
            context: ctx.clone(),
            name: e.name.clone(),
            shape: e.shape.clone(),
            expected: TORCHVISION_VIT_TENSORS.into(),
            hint: " (a representation layer before the head, `representation_size`, which softmoe does not run)".into(),
        });
    }
    let head = r.get("heads.head.weight", None, "")?;
    let classes = match head.shape[..] {
        [c, dd] if dd == d && c > 0 => c,
        _ => return Err(shape_err("heads.head.weight", &head.shape, format!("[num_classes, {d}]"))),
    };
    put("head/kernel", vec![d, classes], transpose(&head.data, classes, d));
    put("head/bias", vec![classes], r.get("heads.head.bias", Some(&[classes]), "num_classes")?.data);
    if let Some(e) = st.entries().iter().find(|e| !r.used.contains(&e.name)) {
        let hint = match e.name.rsplit_once(".mlp.") {
            Some((_, rest)) => soft_moe_pytorch_hint(rest, moe.map_or(0, |m| m.0)),
            None => String::new(),
        };
        return Err(Error::UnknownTensor {
            context: ctx.clone(),
            name: e.name.clone(),
            shape: e.shape.clone(),
            expected: TORCHVISION_VIT_TENSORS.into(),
            hint,
        });
    }
    let (n, p, h) = moe.unwrap_or((0, 0, 0));
    let mut json = serde_json::json!({
        "image_size": grid * patch, "channels": ch, "patch_size": patch, "hidden_size": d, "num_layers": num_layers,
        "num_heads": num_heads, "mlp_dim": mlp_dim.unwrap_or(h), "num_classes": classes, "moe_layers": moe_layers,
        "gelu": Gelu::Erf.name(), "layer_norm_eps": LAYER_NORM_EPS, "classifier": Pooling::Token.name(),
    });
    if moe.is_some() {
        json["num_experts"] = n.into();
        json["slots_per_expert"] = p.into();
        json["expert_mlp_dim"] = h.into();
        json["moe_variant"] = SoftMoeVariant::SoftMoePytorch.name().into();
    }
    let config = VitConfig::from_json(&json.to_string(), &format!("{ctx} (the config it implies)"))?;
    let refs: Vec<(&str, &Tensor)> = out.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let bytes = super::safetensors::serialize(&refs, &Default::default());
    VitWeights::from_parts_with(config, &SafeTensors::parse(bytes, &ctx)?, LoadOptions::default())
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

    /// An edit of a state_dict's tensors.
    type Edit = dyn Fn(&mut Vec<(String, Tensor)>);

    /// A torchvision ViT state_dict: d=4, 2 heads, 3 channels, patch 2, image 4 (4 patches), two
    /// blocks, block 1's mlp a SoftMoE (n=2, p=1, h=3), mlp_dim 6, 5 classes; distinct values
    /// everywhere (1000·tensor + flat index), edited by `edit`.
    fn torchvision_state_dict(edit: impl FnOnce(&mut Vec<(String, Tensor)>)) -> SafeTensors {
        let (d, c, p, t, mlp, classes) = (4, 3, 2, 5, 6, 5);
        let mut k = 0.0;
        let mut ten = |shape: Vec<usize>| {
            k += 1000.0;
            let len = shape.iter().product::<usize>();
            Tensor { shape, data: (0..len).map(|i| k + i as f32).collect() }
        };
        let mut v: Vec<(String, Tensor)> = vec![
            ("class_token".into(), ten(vec![1, 1, d])),
            ("conv_proj.weight".into(), ten(vec![d, c, p, p])),
            ("conv_proj.bias".into(), ten(vec![d])),
            ("encoder.pos_embedding".into(), ten(vec![1, t, d])),
        ];
        for b in 0..2 {
            let pre = format!("encoder.layers.encoder_layer_{b}.");
            for (name, shape) in [
                ("ln_1.weight", vec![d]),
                ("ln_1.bias", vec![d]),
                ("self_attention.in_proj_weight", vec![3 * d, d]),
                ("self_attention.in_proj_bias", vec![3 * d]),
                ("self_attention.out_proj.weight", vec![d, d]),
                ("self_attention.out_proj.bias", vec![d]),
                ("ln_2.weight", vec![d]),
                ("ln_2.bias", vec![d]),
            ] {
                v.push((format!("{pre}{name}"), ten(shape)));
            }
            let mlp: Vec<(String, Vec<usize>)> = if b == 0 {
                vec![
                    ("0.weight".into(), vec![mlp, d]),
                    ("0.bias".into(), vec![mlp]),
                    ("3.weight".into(), vec![d, mlp]),
                    ("3.bias".into(), vec![d]),
                ]
            } else {
                let mut l =
                    vec![("slot_embeds".into(), vec![2, 1, d]), ("norm.gamma".into(), vec![d]), ("slot_norm.gamma".into(), vec![d])];
                for e in 0..2 {
                    l.push((format!("experts.experts.{e}.0.weight"), vec![3, d]));
                    l.push((format!("experts.experts.{e}.0.bias"), vec![3]));
                    l.push((format!("experts.experts.{e}.3.weight"), vec![d, 3]));
                    l.push((format!("experts.experts.{e}.3.bias"), vec![d]));
                }
                l
            };
            for (name, shape) in mlp {
                v.push((format!("{pre}mlp.{name}"), ten(shape)));
            }
        }
        v.push(("encoder.ln.weight".into(), ten(vec![d])));
        v.push(("encoder.ln.bias".into(), ten(vec![d])));
        v.push(("heads.head.weight".into(), ten(vec![classes, d])));
        v.push(("heads.head.bias".into(), ten(vec![classes])));
        edit(&mut v);
        let refs: Vec<(&str, &Tensor)> = v.iter().map(|(n, t)| (n.as_str(), t)).collect();
        SafeTensors::parse(serialize(&refs, &BTreeMap::new()), "vit.safetensors").unwrap()
    }

    #[test]
    fn a_torchvision_vit_is_mapped_element_for_element() {
        use crate::weights::BlockMlp;
        let st = torchvision_state_dict(|_| {});
        let w = torchvision_vit(&st, 2).unwrap();
        let c = &w.config;
        assert_eq!((c.image_size, c.channels, c.patch_size, c.hidden_size, c.num_layers, c.num_heads), (4, 3, 2, 4, 2, 2));
        assert_eq!(
            (c.mlp_dim, c.num_classes, c.moe_layers.clone(), c.num_experts, c.slots_per_expert, c.expert_mlp_dim),
            (6, 5, vec![1], 2, 1, 3)
        );
        assert_eq!(
            (c.classifier, c.gelu, c.moe_variant, c.layer_norm_eps),
            (Pooling::Token, Gelu::Erf, SoftMoeVariant::SoftMoePytorch, 1e-6)
        );
        let get = |name: &str| st.tensor_f32(name).unwrap().data;
        // The file as softmoe writes it, under vmoe's names.
        let out = SafeTensors::parse(w.to_safetensors(), "out").unwrap();
        let put = |name: &str| out.tensor_f32(name).unwrap().data;
        let conv = get("conv_proj.weight");
        let kernel = put("embedding/kernel");
        for (o, ch, py, px) in
            (0..4).flat_map(|o| (0..3).flat_map(move |ch| (0..2).flat_map(move |py| (0..2).map(move |px| (o, ch, py, px)))))
        {
            assert_eq!(kernel[((py * 2 + px) * 3 + ch) * 4 + o], conv[((o * 3 + ch) * 2 + py) * 2 + px]);
        }
        let pre = "encoder.layers.encoder_layer_0.self_attention.";
        let (w_in, b_in, w_out) =
            (get(&format!("{pre}in_proj_weight")), get(&format!("{pre}in_proj_bias")), get(&format!("{pre}out_proj.weight")));
        for (i, q) in ["query", "key", "value"].into_iter().enumerate() {
            let (kq, bq) = (
                put(&format!("Encoder/encoderblock_0/SelfAttention/{q}/kernel")),
                put(&format!("Encoder/encoderblock_0/SelfAttention/{q}/bias")),
            );
            for (x, h, j) in (0..4).flat_map(|x| (0..2).flat_map(move |h| (0..2).map(move |j| (x, h, j)))) {
                // kernel[x, h, j] = W[i·d + h·dh + j, x]; bias[h, j] = b[i·d + h·dh + j].
                assert_eq!(kq[(x * 2 + h) * 2 + j], w_in[(i * 4 + h * 2 + j) * 4 + x], "{q}");
                assert_eq!(bq[h * 2 + j], b_in[i * 4 + h * 2 + j], "{q}");
            }
        }
        let ko = put("Encoder/encoderblock_0/SelfAttention/out/kernel");
        for (h, j, o) in (0..2).flat_map(|h| (0..2).flat_map(move |j| (0..4).map(move |o| (h, j, o)))) {
            assert_eq!(ko[(h * 2 + j) * 4 + o], w_out[o * 4 + h * 2 + j]);
        }
        assert_eq!(put("Encoder/encoderblock_1/LayerNorm_1/scale"), get("encoder.layers.encoder_layer_1.ln_2.weight"));
        assert_eq!(put("cls"), get("class_token"));
        let (w0, head) = (get("encoder.layers.encoder_layer_0.mlp.0.weight"), get("heads.head.weight"));
        let k0 = put("Encoder/encoderblock_0/Mlp/Dense_0/kernel");
        for (x, y) in (0..4).flat_map(|x| (0..6).map(move |y| (x, y))) {
            assert_eq!(k0[x * 6 + y], w0[y * 4 + x]);
        }
        let kh = put("head/kernel");
        for (x, y) in (0..4).flat_map(|x| (0..5).map(move |y| (x, y))) {
            assert_eq!(kh[x * 5 + y], head[y * 4 + x]);
        }
        // The SoftMoE block is the layer converter's, under the block's prefix.
        let BlockMlp::SoftMoe(l) = &w.blocks[1].mlp else { panic!("block 1 is not a Soft MoE block") };
        assert_eq!(l.norm_scale, get("encoder.layers.encoder_layer_1.mlp.norm.gamma"));
        assert_eq!(l.mu[1], get("encoder.layers.encoder_layer_1.mlp.slot_embeds")[4], "mu[0, 1, 0] = slot_embeds[1, 0, 0]");
    }

    #[test]
    fn a_torchvision_vit_with_anything_unexpected_is_refused_by_name() {
        let refused = |edit: &Edit, heads: usize| torchvision_vit(&torchvision_state_dict(edit), heads).unwrap_err();
        let e = refused(&|_| {}, 3);
        assert!(
            matches!(&e, Error::Input { what, expected, .. } if what == "num_heads" && expected.contains("divisor of hidden_dim 4")),
            "{e:?}"
        );
        let e = refused(&|t| t.push(("heads.pre_logits.weight".into(), Tensor::zeros(vec![4, 4]))), 2);
        assert!(
            matches!(&e, Error::UnknownTensor { name, hint, .. } if name == "heads.pre_logits.weight" && hint.contains("representation_size")),
            "{e:?}"
        );
        let e = refused(&|t| t.push(("encoder.layers.encoder_layer_1.mlp.norm.beta".into(), Tensor::zeros(vec![4]))), 2);
        assert!(matches!(&e, Error::UnknownTensor { hint, .. } if hint.contains("use_layernorm=True")), "{e:?}");
        let e = refused(&|t| t.push(("encoder.layers.encoder_layer_2.ln_x.weight".into(), Tensor::zeros(vec![4]))), 2);
        assert!(matches!(&e, Error::UnknownTensor { name, .. } if name == "encoder.layers.encoder_layer_2.ln_x.weight"), "{e:?}");
        let e = refused(
            &|t| t.iter_mut().filter(|(n, _)| n == "encoder.pos_embedding").for_each(|(_, v)| *v = Tensor::zeros(vec![1, 4, 4])),
            2,
        );
        assert!(e.to_string().contains("a square grid"), "{e}");
        let e = refused(&|t| t.retain(|(n, _)| n != "encoder.layers.encoder_layer_1.self_attention.out_proj.bias"), 2);
        assert!(matches!(&e, Error::MissingTensor { name, .. } if name == "encoder.layers.encoder_layer_1.self_attention.out_proj.bias"));
        let e = refused(
            &|t| {
                t.retain(|(n, _)| !n.starts_with("conv_proj."));
                t.push(("conv_proj.conv_last.weight".into(), Tensor::zeros(vec![4, 4, 1, 1])));
            },
            2,
        );
        assert!(e.to_string().contains("convolutional stem"), "{e}");
        // The older MLPBlock names load as the new ones.
        let legacy = |t: &mut Vec<(String, Tensor)>| {
            for (n, _) in t.iter_mut() {
                *n = n
                    .replace("encoder_layer_0.mlp.0.", "encoder_layer_0.mlp.linear_1.")
                    .replace("encoder_layer_0.mlp.3.", "encoder_layer_0.mlp.linear_2.");
            }
        };
        let (a, b) =
            (torchvision_vit(&torchvision_state_dict(legacy), 2).unwrap(), torchvision_vit(&torchvision_state_dict(|_| {}), 2).unwrap());
        assert_eq!(a.to_safetensors(), b.to_safetensors());
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
