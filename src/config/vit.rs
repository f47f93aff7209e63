//! `config.json` of a ViT: the hyper-parameters, read strictly with errors that name the key.

use serde_json::Value;

use crate::config::{Gelu, Pooling, SoftMoeVariant};
use crate::error::{Error, Result};
use crate::routing::{Router, MAX_CAPACITY_MULTIPLE_OF, VMOE_CAPACITY_MULTIPLE_OF};

/// LayerNorm's epsilon (inside the square root) when config.json names none: vmoe's and the trainer's.
pub const LAYER_NORM_EPS: f64 = 1e-6;

/// Sizes above this are refused as absurd before anything is allocated.
const MAX_DIM: usize = 1 << 16;

/// Every key a config.json may hold; any other is an error. `training` (the trainer's record of
/// the recipe and results) is not read.
const KNOWN_KEYS: [&str; 26] = [
    "image_size",
    "channels",
    "patch_size",
    "hidden_size",
    "num_layers",
    "num_heads",
    "mlp_dim",
    "num_classes",
    "moe_layers",
    "num_experts",
    "slots_per_expert",
    "expert_mlp_dim",
    "gelu",
    "normalize",
    "layer_norm_eps",
    "class_names",
    "moe_type",
    "router_k",
    "capacity_factor",
    "capacity_multiple_of",
    "group_size",
    "attention_qk_norm",
    "classifier",
    "dispatch_bfloat16",
    "moe_variant",
    "training",
];

/// A ViT's hyper-parameters (see docs/weights.md for the file format).
#[derive(Clone, Debug, PartialEq)]
pub struct VitConfig {
    pub image_size: usize,
    pub channels: usize,
    pub patch_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub mlp_dim: usize,
    pub num_classes: usize,
    /// Indices of the blocks whose MLP is a Soft MoE layer.
    pub moe_layers: Vec<usize>,
    pub num_experts: usize,
    pub slots_per_expert: usize,
    pub expert_mlp_dim: usize,
    pub gelu: Gelu,
    pub normalize: bool,
    pub layer_norm_eps: f32,
    pub class_names: Vec<String>,
    /// The MoE blocks' router: None for Soft MoE (`moe_type` = `soft`, the default), or a sparse
    /// router (`tokens_choice` with `router_k`, or `experts_choice`; both with `capacity_factor`
    /// and `capacity_multiple_of`, vmoe's default 4 when the key is absent).
    pub router: Option<Router>,
    /// Images per routing group of a sparse router (`group_size`); 0 for Soft MoE.
    pub group_size: usize,
    /// LayerNorm on each head's queries and keys before the attention scores (vmoe's
    /// `attention_qk_norm`, Flax's `normalize_qk`): `query_ln`/`key_ln` scales of head_dim values,
    /// no bias, eps `layer_norm_eps`. Default false.
    pub attention_qk_norm: bool,
    /// What the head reads (vmoe's `classifier`): `gap` (default), `token` or `map`.
    pub classifier: Pooling,
    /// The MoE blocks round the dispatched tokens and the experts' outputs to bfloat16, as vmoe's
    /// `Bfloat16Dispatcher` does (always in its `SoftRouter`; with `dispatcher: {bfloat16: true}` in
    /// its sparse routers). Default false: the f32 math.
    pub dispatch_bfloat16: bool,
    /// Which Soft MoE layer the Soft MoE blocks are (`moe_variant`): vmoe's (default) or
    /// soft-moe-pytorch's, with `Moe/Norm/scale` and `Moe/SlotNorm/scale` instead of `Router/scale`.
    pub moe_variant: SoftMoeVariant,
}

impl VitConfig {
    /// Parses and checks a `config.json` text; `context` (the path) prefixes errors.
    pub fn from_json(text: &str, context: &str) -> Result<Self> {
        let bad = |key: &str, expected: &str, found: &dyn std::fmt::Display| Error::config(context, key, expected, found);
        let v: Value =
            serde_json::from_str(text).map_err(|e| Error::input(context, "a JSON object", format!("text that is not valid JSON ({e})")))?;
        let obj = v.as_object().ok_or_else(|| Error::input(context, "a JSON object", "JSON that is not an object"))?;
        if let Some(k) = obj.keys().find(|k| !KNOWN_KEYS.contains(&k.as_str())) {
            return Err(bad(k, &format!("one of the known keys ({})", KNOWN_KEYS.join(", ")), &"an unknown key"));
        }
        let in_range = format!("an integer in 1..={MAX_DIM}");
        let size = |key: &str| -> Result<usize> {
            let v = obj.get(key).ok_or_else(|| bad(key, &in_range, &"missing"))?;
            match v.as_u64() {
                Some(n) if n > 0 && n as usize <= MAX_DIM => Ok(n as usize),
                _ => Err(bad(key, &in_range, v)),
            }
        };
        let moe_layers = match obj.get("moe_layers") {
            None => Vec::new(),
            Some(l) => l
                .as_array()
                .and_then(|a| a.iter().map(|x| x.as_u64().map(|x| x as usize)).collect::<Option<Vec<_>>>())
                .ok_or_else(|| bad("moe_layers", "an array of block indices", l))?,
        };
        let has_moe = !moe_layers.is_empty();
        let capacity_factor = match obj.get("capacity_factor") {
            None => 1.0,
            Some(v) => v.as_f64().ok_or_else(|| bad("capacity_factor", "a number", v))?,
        };
        let capacity_multiple_of = match obj.get("capacity_multiple_of") {
            None => VMOE_CAPACITY_MULTIPLE_OF,
            Some(v) => match v.as_u64() {
                Some(m) if m as usize <= MAX_CAPACITY_MULTIPLE_OF => m as usize,
                _ => {
                    let expected = format!("an integer in 0..={MAX_CAPACITY_MULTIPLE_OF} (0 and 1: capacities not rounded)");
                    return Err(bad("capacity_multiple_of", &expected, v));
                }
            },
        };
        const MOE_TYPES: &str = "`soft`, `tokens_choice` or `experts_choice`";
        let router = match obj.get("moe_type").map(|v| v.as_str().ok_or_else(|| bad("moe_type", MOE_TYPES, v))).transpose()? {
            None | Some("soft") => None,
            Some("tokens_choice") => Some(Router::TokensChoice { k: size("router_k")?, capacity_factor, capacity_multiple_of }),
            Some("experts_choice") => Some(Router::ExpertsChoice { capacity_factor, capacity_multiple_of }),
            Some(t) => return Err(bad("moe_type", MOE_TYPES, &format!("`{t}`"))),
        };
        let sparse = has_moe && router.is_some();
        let moe_size = |key: &str| if has_moe { size(key) } else { Ok(obj.get(key).and_then(Value::as_u64).unwrap_or(0) as usize) };
        let flag = |key: &str| -> Result<bool> {
            obj.get(key).map(|v| v.as_bool().ok_or_else(|| bad(key, "a boolean", v))).transpose().map(|b| b.unwrap_or(false))
        };
        let gelu = match obj.get("gelu") {
            None => Gelu::Tanh,
            Some(v) => v.as_str().and_then(Gelu::parse).ok_or_else(|| bad("gelu", "`tanh` or `erf`", v))?,
        };
        let cfg = VitConfig {
            image_size: size("image_size")?,
            channels: size("channels")?,
            patch_size: size("patch_size")?,
            hidden_size: size("hidden_size")?,
            num_layers: size("num_layers")?,
            num_heads: size("num_heads")?,
            mlp_dim: size("mlp_dim")?,
            num_classes: size("num_classes")?,
            num_experts: moe_size("num_experts")?,
            slots_per_expert: if sparse { 0 } else { moe_size("slots_per_expert")? },
            group_size: if sparse { size("group_size")? } else { 0 },
            router: if has_moe { router } else { None },
            expert_mlp_dim: moe_size("expert_mlp_dim")?,
            moe_layers,
            attention_qk_norm: flag("attention_qk_norm")?,
            dispatch_bfloat16: flag("dispatch_bfloat16")?,
            moe_variant: match obj.get("moe_variant") {
                None => SoftMoeVariant::Vmoe,
                Some(v) => {
                    v.as_str().and_then(SoftMoeVariant::parse).ok_or_else(|| bad("moe_variant", "`vmoe` or `soft-moe-pytorch`", v))?
                }
            },
            classifier: match obj.get("classifier") {
                None => Pooling::Gap,
                Some(v) => v.as_str().and_then(Pooling::parse).ok_or_else(|| bad("classifier", "`gap`, `token` or `map`", v))?,
            },
            gelu,
            normalize: obj
                .get("normalize")
                .map(|v| v.as_bool().ok_or_else(|| bad("normalize", "a boolean", v)))
                .transpose()?
                .unwrap_or(true),
            layer_norm_eps: match obj.get("layer_norm_eps") {
                None => LAYER_NORM_EPS as f32,
                Some(v) => v.as_f64().ok_or_else(|| bad("layer_norm_eps", "a positive number", v))? as f32,
            },
            class_names: match obj.get("class_names") {
                None => Vec::new(),
                Some(l) => l
                    .as_array()
                    .and_then(|a| a.iter().map(|s| s.as_str().map(String::from)).collect::<Option<Vec<_>>>())
                    .ok_or_else(|| bad("class_names", "an array of strings", l))?,
            },
        };
        cfg.check(context)?;
        Ok(cfg)
    }

    /// Checks the keys against each other; `context` (the path) names the file in errors.
    fn check(&self, context: &str) -> Result<()> {
        let bad = |key: &str, expected: String, found: String| Err(Error::config(context, key, expected, found));
        if !self.image_size.is_multiple_of(self.patch_size) {
            let found = format!("{} (not a multiple of patch_size {})", self.image_size, self.patch_size);
            return bad("image_size", "a multiple of patch_size".into(), found);
        }
        if !self.hidden_size.is_multiple_of(self.num_heads) {
            let found = format!("{} (not a multiple of num_heads {})", self.hidden_size, self.num_heads);
            return bad("hidden_size", "a multiple of num_heads".into(), found);
        }
        if self.head_dim() > 256 {
            let found = format!("{} (head dimension {} with num_heads {})", self.hidden_size, self.head_dim(), self.num_heads);
            return bad("hidden_size", "at most 256 per head (the attention kernel's limit)".into(), found);
        }
        if let Some(&k) = self.moe_layers.iter().find(|&&k| k >= self.num_layers) {
            let found = format!("{:?} (block {k})", self.moe_layers);
            return bad("moe_layers", format!("block indices below num_layers {}", self.num_layers), found);
        }
        if !self.class_names.is_empty() && self.class_names.len() != self.num_classes {
            return bad("class_names", format!("{} names (num_classes)", self.num_classes), format!("{} names", self.class_names.len()));
        }
        if let Some(r) = self.router {
            r.validate(self.num_experts).map_err(|e| e.in_context(context))?;
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return bad("layer_norm_eps", "a positive number".into(), self.layer_norm_eps.to_string());
        }
        if self.moe_variant == SoftMoeVariant::SoftMoePytorch {
            // soft-moe-pytorch's layer is a Soft MoE that always normalises and never rounds.
            let clash = [
                ("moe_type", self.router.map(|r| format!("`{}`", r.name())), "`soft` (soft-moe-pytorch's layer is a Soft MoE)"),
                ("normalize", (!self.normalize).then(|| "false".to_string()), "true (soft-moe-pytorch always applies its RMSNorm)"),
                (
                    "dispatch_bfloat16",
                    self.dispatch_bfloat16.then(|| "true".to_string()),
                    "false (vmoe's Bfloat16Dispatcher is no part of soft-moe-pytorch)",
                ),
            ];
            if let Some((key, Some(found), expected)) = clash.into_iter().find(|c| c.1.is_some()) {
                return bad(key, format!("{expected} with `moe_variant` `soft-moe-pytorch`"), found);
            }
        }
        Ok(())
    }

    /// The config as `config.json` text.
    pub fn to_json(&self) -> String {
        let mut v = serde_json::json!({
            "image_size": self.image_size,
            "channels": self.channels,
            "patch_size": self.patch_size,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "mlp_dim": self.mlp_dim,
            "num_classes": self.num_classes,
            "moe_layers": self.moe_layers,
            "num_experts": self.num_experts,
            "slots_per_expert": self.slots_per_expert,
            "expert_mlp_dim": self.expert_mlp_dim,
            "gelu": self.gelu.name(),
            "normalize": self.normalize,
            // The f32's shortest decimal (1e-6, not 9.999999974752427e-7).
            "layer_norm_eps": self.layer_norm_eps.to_string().parse::<f64>().unwrap_or(self.layer_norm_eps.into()),
            "class_names": self.class_names,
        });
        // Options written only when set, so a config without them reads back as it was.
        if self.attention_qk_norm {
            v["attention_qk_norm"] = true.into();
        }
        if self.classifier != Pooling::Gap {
            v["classifier"] = self.classifier.name().into();
        }
        if self.dispatch_bfloat16 {
            v["dispatch_bfloat16"] = true.into();
        }
        if self.moe_variant != SoftMoeVariant::Vmoe {
            v["moe_variant"] = self.moe_variant.name().into();
        }
        if let Some(r) = self.router {
            v["moe_type"] = r.name().into();
            v["capacity_factor"] = r.capacity_factor().into();
            v["capacity_multiple_of"] = r.capacity_multiple_of().into();
            v["group_size"] = self.group_size.into();
            // Slots are a Soft MoE router's; a sparse one's capacity follows from the keys above.
            if let Some(o) = v.as_object_mut() {
                o.remove("slots_per_expert");
            }
            if r.k() > 0 {
                v["router_k"] = r.k().into();
            }
        }
        serde_json::to_string_pretty(&v).unwrap_or_default()
    }

    /// Patches per side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Patch tokens per image.
    pub fn tokens(&self) -> usize {
        self.grid() * self.grid()
    }

    /// Tokens the encoder runs on per image: the patches, and the class token first with the
    /// `token` classifier.
    pub fn seq_len(&self) -> usize {
        self.tokens() + usize::from(self.classifier == Pooling::Token)
    }

    /// Values per patch (P·P·C).
    pub fn patch_dim(&self) -> usize {
        self.patch_size * self.patch_size * self.channels
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_heads
    }

    pub fn is_moe(&self, block: usize) -> bool {
        self.moe_layers.contains(&block)
    }

    /// What the MoE blocks are: `soft`, `tokens_choice`, `experts_choice`, or `dense` without any.
    pub fn moe_type(&self) -> &'static str {
        match (self.moe_layers.is_empty(), self.router) {
            (true, _) => "dense",
            (false, None) => "soft",
            (false, Some(r)) => r.name(),
        }
    }

    /// The name of class `k` (or its number when the config has no names).
    pub fn class_name(&self, k: usize) -> String {
        self.class_names.get(k).cloned().unwrap_or_else(|| k.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPARSE: &str = r#"{"image_size": 28, "channels": 1, "patch_size": 4, "hidden_size": 16, "num_layers": 2,
        "num_heads": 2, "mlp_dim": 32, "num_classes": 10, "moe_layers": [1], "num_experts": 8, "expert_mlp_dim": 24,
        "moe_type": "tokens_choice", "router_k": 1, "capacity_factor": 1.0, "group_size": 8"#;

    fn parse(extra: &str) -> Result<VitConfig> {
        VitConfig::from_json(&format!("{SPARSE}{extra}}}"), "config.json")
    }

    #[test]
    fn capacity_multiple_of_defaults_to_vmoes_and_round_trips() {
        let c = parse("").unwrap();
        assert_eq!(c.router, Some(Router::tokens_choice(1, 1.0)));
        assert_eq!(c.router.unwrap().capacity(392, 8), 52);
        for m in [0, 1, 8] {
            let c = parse(&format!(r#", "capacity_multiple_of": {m}"#)).unwrap();
            assert_eq!(c.router.unwrap().capacity_multiple_of(), m);
            let text = c.to_json();
            assert!(text.contains(&format!(r#""capacity_multiple_of": {m}"#)), "{text}");
            assert_eq!(VitConfig::from_json(&text, "again").unwrap(), c);
        }
        let ec = parse(r#", "moe_type": "experts_choice", "capacity_multiple_of": 1"#);
        assert_eq!(ec.unwrap().router, Some(Router::ExpertsChoice { capacity_factor: 1.0, capacity_multiple_of: 1 }));
    }

    #[test]
    fn bad_capacity_multiples_and_unknown_keys_are_refused_by_name() {
        for bad in ["-1", "2.5", "\"4\"", "null", "65537"] {
            let e = parse(&format!(r#", "capacity_multiple_of": {bad}"#)).unwrap_err().to_string();
            assert!(e.contains("config.json") && e.contains("`capacity_multiple_of`"), "{bad}: {e}");
        }
        let e = parse(r#", "capacity_multiple": 4"#).unwrap_err().to_string();
        assert!(e.contains("`capacity_multiple` is an unknown key"), "{e}");
        assert!(parse(r#", "training": {"seed": 42}"#).is_ok());
    }

    #[test]
    fn vmoe_options_are_read_checked_and_written_back() {
        let c = parse(r#", "attention_qk_norm": true, "classifier": "token", "dispatch_bfloat16": true"#).unwrap();
        assert!(c.attention_qk_norm && c.dispatch_bfloat16);
        assert!(c.to_json().contains(r#""dispatch_bfloat16": true"#));
        assert!(!parse("").unwrap().dispatch_bfloat16);
        assert_eq!((c.classifier, c.tokens(), c.seq_len()), (Pooling::Token, 49, 50));
        assert!(c.to_json().contains(r#""attention_qk_norm": true"#) && c.to_json().contains(r#""classifier": "token""#));
        assert_eq!(VitConfig::from_json(&c.to_json(), "again").unwrap(), c);
        for (name, pooling) in [("gap", Pooling::Gap), ("map", Pooling::Map)] {
            assert_eq!(parse(&format!(r#", "classifier": "{name}""#)).unwrap().classifier, pooling);
        }
        assert_eq!(parse("").unwrap().classifier, Pooling::Gap);
        for bad in ["\"cls\"", "\"0\"", "1"] {
            let e = parse(&format!(r#", "classifier": {bad}"#)).unwrap_err();
            assert!(
                matches!(&e, Error::Config { key, expected, .. } if key == "classifier" && expected == "`gap`, `token` or `map`"),
                "{bad}: {e:?}"
            );
        }
        assert!(!parse("").unwrap().attention_qk_norm);
        assert!(!parse("").unwrap().to_json().contains("attention_qk_norm"), "an unset option is not written");
        for bad in ["1", "\"true\"", "null"] {
            match parse(&format!(r#", "attention_qk_norm": {bad}"#)) {
                Err(Error::Config { context, key, expected, .. }) => {
                    assert_eq!(
                        (context.as_str(), key.as_str(), expected.as_str()),
                        ("config.json", "attention_qk_norm", "a boolean"),
                        "{bad}"
                    );
                }
                other => panic!("{bad}: expected Error::Config, got {other:?}"),
            }
        }
        // vmoe's spelling is the key; a near miss is an unknown key.
        let e = parse(r#", "qk_norm": true"#).unwrap_err().to_string();
        assert!(e.contains("`qk_norm` is an unknown key"), "{e}");
        for (key, value) in [("gelu", "1"), ("layer_norm_eps", "\"1e-6\"")] {
            let e = parse(&format!(r#", "{key}": {value}"#)).unwrap_err();
            assert!(matches!(&e, Error::Config { key: k, .. } if k == key), "{key}: {e:?}");
        }
    }

    #[test]
    fn moe_variant_is_read_checked_against_the_other_keys_and_written_back() {
        const SOFT: &str = r#"{"image_size": 28, "channels": 1, "patch_size": 7, "hidden_size": 16, "num_layers": 2,
            "num_heads": 2, "mlp_dim": 32, "num_classes": 10, "moe_layers": [1], "num_experts": 4, "slots_per_expert": 2,
            "expert_mlp_dim": 24, "gelu": "erf""#;
        let soft = |extra: &str| VitConfig::from_json(&format!("{SOFT}{extra}}}"), "config.json");
        assert_eq!(soft("").unwrap().moe_variant, SoftMoeVariant::Vmoe);
        assert!(!soft("").unwrap().to_json().contains("moe_variant"), "the default is not written");
        let c = soft(r#", "moe_variant": "soft-moe-pytorch""#).unwrap();
        assert_eq!(c.moe_variant, SoftMoeVariant::SoftMoePytorch);
        assert!(c.to_json().contains(r#""moe_variant": "soft-moe-pytorch""#));
        assert_eq!(VitConfig::from_json(&c.to_json(), "again").unwrap(), c);
        for bad in ["\"pytorch\"", "true"] {
            let e = soft(&format!(r#", "moe_variant": {bad}"#)).unwrap_err();
            assert!(
                matches!(&e, Error::Config { key, expected, .. } if key == "moe_variant" && expected == "`vmoe` or `soft-moe-pytorch`"),
                "{e:?}"
            );
        }
        for (extra, key) in [(r#", "normalize": false"#, "normalize"), (r#", "dispatch_bfloat16": true"#, "dispatch_bfloat16")] {
            let e = soft(&format!(r#", "moe_variant": "soft-moe-pytorch"{extra}"#)).unwrap_err();
            assert!(matches!(&e, Error::Config { key: k, expected, .. } if k == key && expected.contains("soft-moe-pytorch")), "{e:?}");
        }
        let e = parse(r#", "moe_variant": "soft-moe-pytorch""#).unwrap_err();
        assert!(matches!(&e, Error::Config { key, found, .. } if key == "moe_type" && found == "`tokens_choice`"), "{e:?}");
    }

    #[test]
    fn the_shipped_sparse_models_record_the_unrounded_capacity_rule() {
        for name in ["tokens-choice-vit", "experts-choice-vit"] {
            let path = format!("{}/weights/{name}/config.json", env!("CARGO_MANIFEST_DIR"));
            let c = VitConfig::from_json(&std::fs::read_to_string(&path).unwrap(), &path).unwrap();
            let r = c.router.expect("a sparse model");
            assert_eq!(r.capacity_multiple_of(), 1, "{name}");
            // 8 images of 49 tokens on 8 experts: 49 slots per expert, as the models were trained.
            assert_eq!(r.capacity(c.group_size * c.tokens(), c.num_experts), 49, "{name}");
        }
    }

    #[test]
    fn the_shipped_configs_are_written_back_as_they_are() {
        for name in ["dense-vit", "soft-moe-vit", "tokens-choice-vit", "experts-choice-vit"] {
            let path = format!("{}/weights/{name}/config.json", env!("CARGO_MANIFEST_DIR"));
            let text = std::fs::read_to_string(&path).unwrap();
            let mut file: Value = serde_json::from_str(&text).unwrap();
            file.as_object_mut().unwrap().remove("training");
            let written: Value = serde_json::from_str(&VitConfig::from_json(&text, &path).unwrap().to_json()).unwrap();
            assert_eq!(written, file, "{name}");
        }
    }
}
