//! `config.json` of a ViT: the hyper-parameters, read strictly with errors that name the key.

use serde_json::Value;

use crate::error::{Error, Result};
use crate::layers::Gelu;
use crate::routing::Router;

/// Sizes above this are refused as absurd before anything is allocated.
const MAX_DIM: usize = 1 << 16;

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
    /// router (`tokens_choice` with `router_k`, or `experts_choice`; both with `capacity_factor`).
    pub router: Option<Router>,
    /// Images per routing group of a sparse router (`group_size`); 0 for Soft MoE.
    pub group_size: usize,
}

impl VitConfig {
    /// Parses and checks a `config.json` text; `context` (the path) prefixes errors.
    pub fn from_json(text: &str, context: &str) -> Result<Self> {
        let bad = |m: String| Error::Config(format!("{context}: {m}"));
        let v: Value = serde_json::from_str(text).map_err(|e| bad(format!("not valid JSON: {e}")))?;
        let obj = v.as_object().ok_or_else(|| bad("not a JSON object".into()))?;
        let size = |key: &str| -> Result<usize> {
            let n = obj
                .get(key)
                .ok_or_else(|| bad(format!("missing key `{key}`")))?
                .as_u64()
                .ok_or_else(|| bad(format!("`{key}` is not a non-negative integer")))?;
            if n == 0 || n as usize > MAX_DIM {
                return Err(bad(format!("`{key}` = {n} is outside 1..={MAX_DIM}")));
            }
            Ok(n as usize)
        };
        let moe_layers = match obj.get("moe_layers") {
            None => Vec::new(),
            Some(l) => l
                .as_array()
                .ok_or_else(|| bad("`moe_layers` is not an array".into()))?
                .iter()
                .map(|x| x.as_u64().map(|x| x as usize))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad("`moe_layers` holds something other than block indices".into()))?,
        };
        let has_moe = !moe_layers.is_empty();
        let capacity_factor = match obj.get("capacity_factor") {
            None => 1.0,
            Some(v) => v.as_f64().ok_or_else(|| bad("`capacity_factor` is not a number".into()))?,
        };
        let router = match obj.get("moe_type").map(|v| v.as_str().ok_or_else(|| bad("`moe_type` is not a string".into()))).transpose()? {
            None | Some("soft") => None,
            Some("tokens_choice") => Some(Router::TokensChoice { k: size("router_k")?, capacity_factor }),
            Some("experts_choice") => Some(Router::ExpertsChoice { capacity_factor }),
            Some(t) => return Err(bad(format!("`moe_type` is `{t}`, expected `soft`, `tokens_choice` or `experts_choice`"))),
        };
        let sparse = has_moe && router.is_some();
        let moe_size = |key: &str| if has_moe { size(key) } else { Ok(obj.get(key).and_then(Value::as_u64).unwrap_or(0) as usize) };
        let gelu = match obj.get("gelu").and_then(Value::as_str) {
            None => Gelu::Tanh,
            Some(s) => Gelu::parse(s).ok_or_else(|| bad(format!("`gelu` is `{s}`, expected `tanh` or `erf`")))?,
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
            gelu,
            normalize: obj
                .get("normalize")
                .map(|v| v.as_bool().ok_or_else(|| bad("`normalize` is not a boolean".into())))
                .transpose()?
                .unwrap_or(true),
            layer_norm_eps: obj.get("layer_norm_eps").and_then(Value::as_f64).unwrap_or(1e-6) as f32,
            class_names: match obj.get("class_names") {
                None => Vec::new(),
                Some(l) => l
                    .as_array()
                    .and_then(|a| a.iter().map(|s| s.as_str().map(String::from)).collect::<Option<Vec<_>>>())
                    .ok_or_else(|| bad("`class_names` is not an array of strings".into()))?,
            },
        };
        cfg.check().map_err(bad)?;
        Ok(cfg)
    }

    fn check(&self) -> std::result::Result<(), String> {
        if !self.image_size.is_multiple_of(self.patch_size) {
            return Err(format!("image_size {} is not a multiple of patch_size {}", self.image_size, self.patch_size));
        }
        if !self.hidden_size.is_multiple_of(self.num_heads) {
            return Err(format!("hidden_size {} is not a multiple of num_heads {}", self.hidden_size, self.num_heads));
        }
        if self.head_dim() > 256 {
            return Err(format!("head dimension {} exceeds the attention kernel's 256", self.head_dim()));
        }
        if let Some(&k) = self.moe_layers.iter().find(|&&k| k >= self.num_layers) {
            return Err(format!("moe_layers names block {k} but there are {} blocks", self.num_layers));
        }
        if !self.class_names.is_empty() && self.class_names.len() != self.num_classes {
            return Err(format!("{} class_names for {} classes", self.class_names.len(), self.num_classes));
        }
        if let Some(r) = self.router {
            r.validate(self.num_experts).map_err(|e| e.to_string())?;
        }
        if !(self.layer_norm_eps.is_finite() && self.layer_norm_eps > 0.0) {
            return Err(format!("layer_norm_eps {} is not a positive number", self.layer_norm_eps));
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
            "layer_norm_eps": self.layer_norm_eps,
            "class_names": self.class_names,
        });
        if let Some(r) = self.router {
            v["moe_type"] = r.name().into();
            v["capacity_factor"] = r.capacity_factor().into();
            v["group_size"] = self.group_size.into();
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

    /// Tokens per image.
    pub fn tokens(&self) -> usize {
        self.grid() * self.grid()
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
