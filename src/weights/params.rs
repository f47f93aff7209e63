//! A ViT's trainable tensors in the layouts the kernels read (q, k and v fused into one [d, 3d]
//! kernel, each LayerNorm's scale and bias packed as [scale | bias]), in one fixed order: what the
//! GPU trainer keeps one buffer (and one optimiser state) each for, and what the f64 reference
//! gradient returns. `VitWeights` converts to and from it.

use crate::config::VitConfig;
use crate::error::{Error, Result};
use crate::weights::{BlockMlp, BlockWeights, SoftMoeWeights, VitWeights};

/// What one trainable tensor is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamSpec {
    /// Its name: SPEC §2's, with `qkv` for the fused attention projections and the LayerNorm's
    /// folder (`…/LayerNorm_0`) for its packed scale and bias.
    pub name: String,
    pub len: usize,
    /// Whether AdamW decays it: the dense kernels (`…/kernel`), as the trainer does; not biases,
    /// LayerNorms, the position embedding or the router.
    pub decay: bool,
}

/// Where a block's tensors sit in the list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockParams {
    pub ln0: usize,
    pub qkv_kernel: usize,
    pub qkv_bias: usize,
    pub out_kernel: usize,
    pub out_bias: usize,
    pub ln2: usize,
    /// Dense: Dense_0 kernel, bias, Dense_1 kernel, bias. Soft MoE: mu, scale, then the experts' four.
    pub mlp: usize,
    pub soft_moe: bool,
}

/// The list's shape for one config: every tensor and where each block's start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamLayout {
    pub specs: Vec<ParamSpec>,
    pub blocks: Vec<BlockParams>,
    pub embedding_kernel: usize,
    pub embedding_bias: usize,
    pub pos_embedding: usize,
    pub norm: usize,
    pub head_kernel: usize,
    pub head_bias: usize,
}

impl ParamLayout {
    /// The layout of `c`'s tensors; sparse MoE blocks are refused (training them stays in the
    /// candle trainer).
    pub fn new(c: &VitConfig) -> Result<Self> {
        if c.router.is_some() && !c.moe_layers.is_empty() {
            return Err(Error::config(
                "training",
                "moe_type",
                "`soft` (softmoe trains Soft MoE and dense ViTs; the sparse baselines are trained with trainer/)",
                format!("`{}`", c.moe_type()),
            ));
        }
        // What the training kernels compute: LayerNorm'd attention without q/k norms, global average
        // pooling, vmoe's Soft MoE router in f32.
        let refuse = |key: &str, expected: &str, found: String| Err(Error::config("training", key, expected, found));
        if c.attention_qk_norm {
            return refuse("attention_qk_norm", "false (training has no backward of the q/k LayerNorms yet)", "true".into());
        }
        if c.classifier != crate::config::Pooling::Gap {
            return refuse("classifier", "`gap` (training pools by the mean of the tokens)", format!("{:?}", c.classifier));
        }
        if c.dispatch_bfloat16 {
            return refuse("dispatch_bfloat16", "false (training dispatches in f32)", "true".into());
        }
        if c.moe_variant != crate::config::SoftMoeVariant::default() {
            return refuse("moe_variant", "vmoe's router (the one training differentiates)", format!("{:?}", c.moe_variant));
        }
        let (d, m) = (c.hidden_size, c.tokens());
        let mut specs = Vec::new();
        let mut push = |name: String, len: usize| {
            let decay = name.ends_with("/kernel") && !name.contains("Router");
            specs.push(ParamSpec { name, len, decay });
            specs.len() - 1
        };
        let embedding_kernel = push("embedding/kernel".into(), c.patch_dim() * d);
        let embedding_bias = push("embedding/bias".into(), d);
        let pos_embedding = push("Encoder/posembed_input/pos_embedding".into(), m * d);
        let mut blocks = Vec::new();
        for k in 0..c.num_layers {
            let pre = format!("Encoder/encoderblock_{k}/");
            let att = format!("{pre}MultiHeadDotProductAttention_1/");
            let ln0 = push(format!("{pre}LayerNorm_0"), 2 * d);
            let qkv_kernel = push(format!("{att}qkv/kernel"), 3 * d * d);
            let qkv_bias = push(format!("{att}qkv/bias"), 3 * d);
            let out_kernel = push(format!("{att}out/kernel"), d * d);
            let out_bias = push(format!("{att}out/bias"), d);
            let ln2 = push(format!("{pre}LayerNorm_2"), 2 * d);
            let soft_moe = c.is_moe(k);
            let mlp = if soft_moe {
                let (n, s, h) = (c.num_experts, c.num_experts * c.slots_per_expert, c.expert_mlp_dim);
                let first = push(format!("{pre}Moe/Router/mu"), d * s);
                push(format!("{pre}Moe/Router/scale"), 1);
                push(format!("{pre}Moe/Mlp/Dense_0/kernel"), n * d * h);
                push(format!("{pre}Moe/Mlp/Dense_0/bias"), n * h);
                push(format!("{pre}Moe/Mlp/Dense_1/kernel"), n * h * d);
                push(format!("{pre}Moe/Mlp/Dense_1/bias"), n * d);
                first
            } else {
                let f = c.mlp_dim;
                let first = push(format!("{pre}MlpBlock_3/Dense_0/kernel"), d * f);
                push(format!("{pre}MlpBlock_3/Dense_0/bias"), f);
                push(format!("{pre}MlpBlock_3/Dense_1/kernel"), f * d);
                push(format!("{pre}MlpBlock_3/Dense_1/bias"), d);
                first
            };
            blocks.push(BlockParams { ln0, qkv_kernel, qkv_bias, out_kernel, out_bias, ln2, mlp, soft_moe });
        }
        let norm = push("Encoder/encoder_norm".into(), 2 * d);
        let head_kernel = push("head/kernel".into(), d * c.num_classes);
        let head_bias = push("head/bias".into(), c.num_classes);
        Ok(ParamLayout { specs, blocks, embedding_kernel, embedding_bias, pos_embedding, norm, head_kernel, head_bias })
    }

    /// The number of trainable values.
    pub fn count(&self) -> usize {
        self.specs.iter().map(|s| s.len).sum()
    }
}

impl VitWeights {
    /// The trainable tensors in `ParamLayout` order.
    pub fn to_params(&self) -> Result<Vec<Vec<f32>>> {
        let layout = ParamLayout::new(&self.config)?;
        let pack = |s: &[f32], b: &[f32]| [s, b].concat();
        let mut out = vec![self.embedding_kernel.clone(), self.embedding_bias.clone(), self.pos_embedding.clone()];
        for b in &self.blocks {
            out.push(pack(&b.ln0_scale, &b.ln0_bias));
            out.extend([b.qkv_kernel.clone(), b.qkv_bias.clone(), b.out_kernel.clone(), b.out_bias.clone()]);
            out.push(pack(&b.ln2_scale, &b.ln2_bias));
            match &b.mlp {
                BlockMlp::Dense { w0, b0, w1, b1 } => out.extend([w0.clone(), b0.clone(), w1.clone(), b1.clone()]),
                BlockMlp::SoftMoe(w) => out.extend([w.mu.clone(), vec![w.scale], w.w0.clone(), w.b0.clone(), w.w1.clone(), w.b1.clone()]),
                BlockMlp::Sparse(_) => return Err(Error::Internal("a sparse block passed ParamLayout::new".into())),
            }
        }
        out.push(pack(&self.norm_scale, &self.norm_bias));
        out.extend([self.head_kernel.clone(), self.head_bias.clone()]);
        for (v, s) in out.iter().zip(&layout.specs) {
            if v.len() != s.len {
                return Err(Error::Internal(format!("`{}` holds {} values, its layout {}", s.name, v.len(), s.len)));
            }
        }
        Ok(out)
    }

    /// The weights of `config` from its trainable tensors in `ParamLayout` order.
    pub fn from_params(config: VitConfig, params: &[Vec<f32>]) -> Result<Self> {
        let layout = ParamLayout::new(&config)?;
        if params.len() != layout.specs.len() {
            return Err(Error::input("parameters", format!("{} tensors", layout.specs.len()), params.len()));
        }
        if let Some((s, v)) = layout.specs.iter().zip(params).find(|(s, v)| s.len != v.len()) {
            return Err(Error::input(format!("parameter `{}`", s.name), format!("{} values", s.len), v.len()));
        }
        let d = config.hidden_size;
        let split = |v: &Vec<f32>| (v[..d].to_vec(), v[d..].to_vec());
        let mut blocks = Vec::new();
        for bp in &layout.blocks {
            let (ln0_scale, ln0_bias) = split(&params[bp.ln0]);
            let (ln2_scale, ln2_bias) = split(&params[bp.ln2]);
            let p = |i: usize| params[bp.mlp + i].clone();
            let mlp = if bp.soft_moe {
                BlockMlp::SoftMoe(SoftMoeWeights {
                    d,
                    n: config.num_experts,
                    p: config.slots_per_expert,
                    h: config.expert_mlp_dim,
                    mu: p(0),
                    scale: params[bp.mlp + 1][0],
                    w0: p(2),
                    b0: p(3),
                    w1: p(4),
                    b1: p(5),
                    gelu: config.gelu,
                    normalize: config.normalize,
                    dispatch_bfloat16: false,
                    variant: Default::default(),
                    norm_scale: Vec::new(),
                    slot_norm_scale: Vec::new(),
                })
            } else {
                BlockMlp::Dense { w0: p(0), b0: p(1), w1: p(2), b1: p(3) }
            };
            blocks.push(BlockWeights {
                ln0_scale,
                ln0_bias,
                qkv_kernel: params[bp.qkv_kernel].clone(),
                qkv_bias: params[bp.qkv_bias].clone(),
                out_kernel: params[bp.out_kernel].clone(),
                out_bias: params[bp.out_bias].clone(),
                qk_norm: None,
                ln2_scale,
                ln2_bias,
                mlp,
            });
        }
        let (norm_scale, norm_bias) = split(&params[layout.norm]);
        let w = VitWeights {
            embedding_kernel: params[layout.embedding_kernel].clone(),
            embedding_bias: params[layout.embedding_bias].clone(),
            cls: None,
            pos_embedding: params[layout.pos_embedding].clone(),
            blocks,
            map_head: None,
            names: Default::default(),
            norm_scale,
            norm_bias,
            head_kernel: params[layout.head_kernel].clone(),
            head_bias: params[layout.head_bias].clone(),
            config,
        };
        if let Some((s, i)) = layout.specs.iter().zip(params).find_map(|(s, v)| v.iter().position(|x| !x.is_finite()).map(|i| (s, i))) {
            return Err(Error::NonFinite { context: "training".into(), name: s.name.clone(), index: i });
        }
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn the_shipped_models_round_trip_and_count_as_recorded() {
        for name in ["soft-moe-vit", "dense-vit"] {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("weights").join(name);
            let w = VitWeights::load(&dir).unwrap();
            let layout = ParamLayout::new(&w.config).unwrap();
            let p = w.to_params().unwrap();
            let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
            let recorded = serde_json::from_str::<serde_json::Value>(&text).unwrap()["training"]["parameters"].as_u64();
            assert_eq!(Some(layout.count() as u64), recorded, "{name}");
            let again = VitWeights::from_parts(w.config.clone(), &crate::SafeTensors::parse(w.to_safetensors(), name).unwrap()).unwrap();
            assert_eq!(VitWeights::from_params(w.config.clone(), &p).unwrap().to_safetensors(), again.to_safetensors(), "{name}");
            let decayed: Vec<&str> = layout.specs.iter().filter(|s| s.decay).map(|s| s.name.as_str()).collect();
            assert!(decayed.iter().all(|n| n.ends_with("/kernel")) && decayed.contains(&"head/kernel"), "{decayed:?}");
            assert!(!layout.specs.iter().any(|s| s.decay && s.name.contains("Router")));
        }
    }

    #[test]
    fn sparse_models_are_refused_by_name() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("weights/tokens-choice-vit");
        let w = VitWeights::load(&dir).unwrap();
        let e = ParamLayout::new(&w.config).unwrap_err().to_string();
        assert!(e.contains("moe_type") && e.contains("tokens_choice"), "{e}");
    }
}
