//! A ViT's weights (SPEC §2 names), every tensor checked for presence, dtype, shape and finiteness.

use std::collections::HashMap;
use std::path::Path;

use crate::config::Gelu;
use crate::config::VitConfig;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::weights::{soft_moe, SafeTensors, SoftMoeWeights, SparseMoeWeights, ROUTER_KERNEL};

/// The MLP of an encoder block: dense, or a Soft MoE layer.
#[derive(Clone, Debug)]
pub enum BlockMlp {
    /// `MlpBlock_3/Dense_{0,1}`: [d, mlp] and [mlp, d] kernels with biases.
    Dense { w0: Vec<f32>, b0: Vec<f32>, w1: Vec<f32>, b1: Vec<f32> },
    /// `Moe/...`: a Soft MoE layer.
    SoftMoe(SoftMoeWeights),
    /// `Moe/...`: a sparse (Tokens Choice or Experts Choice) MoE layer.
    Sparse(SparseMoeWeights),
}

/// One pre-LN encoder block. q, k and v are concatenated into one [d, 3d] kernel at load.
#[derive(Clone, Debug)]
pub struct BlockWeights {
    pub ln0_scale: Vec<f32>,
    pub ln0_bias: Vec<f32>,
    /// [d, 3d]: columns 0..d are q (head-major), d..2d are k, 2d..3d are v.
    pub qkv_kernel: Vec<f32>,
    pub qkv_bias: Vec<f32>,
    /// [d, d]: rows are (head, head-dim) of the attention output.
    pub out_kernel: Vec<f32>,
    pub out_bias: Vec<f32>,
    pub ln2_scale: Vec<f32>,
    pub ln2_bias: Vec<f32>,
    pub mlp: BlockMlp,
}

/// All of a ViT's weights, in the layouts the kernels read.
#[derive(Clone, Debug)]
pub struct VitWeights {
    pub config: VitConfig,
    /// [P·P·C, d], rows in (py, px, c) order.
    pub embedding_kernel: Vec<f32>,
    pub embedding_bias: Vec<f32>,
    /// [m, d].
    pub pos_embedding: Vec<f32>,
    pub blocks: Vec<BlockWeights>,
    pub norm_scale: Vec<f32>,
    pub norm_bias: Vec<f32>,
    /// [d, classes].
    pub head_kernel: Vec<f32>,
    pub head_bias: Vec<f32>,
}

/// Every tensor of a ViT with this config, (SPEC §2 / vmoe name, shape), in the order the trainer
/// initialises them: the patch embedding and position embedding, then block by block its
/// LayerNorms, attention and MLP (dense `MlpBlock_3`, or `Moe` with a Soft MoE router's `mu` and
/// rank-0 `scale` or a sparse router's kernel), then the final norm and the head.
pub fn vit_tensor_shapes(c: &VitConfig) -> Vec<(String, Vec<usize>)> {
    let (p, d, heads, hd) = (c.patch_size, c.hidden_size, c.num_heads, c.head_dim());
    let mut v: Vec<(String, Vec<usize>)> = vec![
        ("embedding/kernel".into(), vec![p, p, c.channels, d]),
        ("embedding/bias".into(), vec![d]),
        ("Encoder/posembed_input/pos_embedding".into(), vec![1, c.tokens(), d]),
    ];
    for k in 0..c.num_layers {
        let pre = format!("Encoder/encoderblock_{k}/");
        for ln in ["LayerNorm_0", "LayerNorm_2"] {
            v.push((format!("{pre}{ln}/scale"), vec![d]));
            v.push((format!("{pre}{ln}/bias"), vec![d]));
        }
        let att = format!("{pre}MultiHeadDotProductAttention_1/");
        for q in ["query", "key", "value"] {
            v.push((format!("{att}{q}/kernel"), vec![d, heads, hd]));
            v.push((format!("{att}{q}/bias"), vec![heads, hd]));
        }
        v.push((format!("{att}out/kernel"), vec![heads, hd, d]));
        v.push((format!("{att}out/bias"), vec![d]));
        if c.is_moe(k) {
            let (n, h) = (c.num_experts, c.expert_mlp_dim);
            if c.router.is_some() {
                v.push((format!("{pre}Moe/{ROUTER_KERNEL}"), vec![d, n]));
            } else {
                v.push((format!("{pre}Moe/{}", soft_moe::MU), vec![d, n, c.slots_per_expert]));
                v.push((format!("{pre}Moe/{}", soft_moe::SCALE), vec![]));
            }
            v.push((format!("{pre}Moe/{}", soft_moe::W0), vec![n, d, h]));
            v.push((format!("{pre}Moe/{}", soft_moe::B0), vec![n, h]));
            v.push((format!("{pre}Moe/{}", soft_moe::W1), vec![n, h, d]));
            v.push((format!("{pre}Moe/{}", soft_moe::B1), vec![n, d]));
        } else {
            v.push((format!("{pre}MlpBlock_3/Dense_0/kernel"), vec![d, c.mlp_dim]));
            v.push((format!("{pre}MlpBlock_3/Dense_0/bias"), vec![c.mlp_dim]));
            v.push((format!("{pre}MlpBlock_3/Dense_1/kernel"), vec![c.mlp_dim, d]));
            v.push((format!("{pre}MlpBlock_3/Dense_1/bias"), vec![d]));
        }
    }
    v.push(("Encoder/encoder_norm/scale".into(), vec![d]));
    v.push(("Encoder/encoder_norm/bias".into(), vec![d]));
    v.push(("head/kernel".into(), vec![d, c.num_classes]));
    v.push(("head/bias".into(), vec![c.num_classes]));
    v
}

/// Reads tensors from one file, checking each against its shape in [`vit_tensor_shapes`].
struct Reader<'a> {
    st: &'a SafeTensors,
    shapes: HashMap<String, Vec<usize>>,
}

impl Reader<'_> {
    fn get(&self, name: &str) -> Result<Vec<f32>> {
        let shape = self.shapes.get(name).ok_or_else(|| Error::Internal(format!("`{name}` is not a tensor of this config")))?;
        let t: Tensor = self.st.tensor_f32(name)?;
        if t.shape != *shape {
            return Err(Error::Shape {
                context: self.st.context().to_string(),
                name: name.to_string(),
                found: t.shape,
                expected: format!("{shape:?}"),
            });
        }
        if let Some(index) = t.data.iter().position(|v| !v.is_finite()) {
            return Err(Error::NonFinite { context: self.st.context().to_string(), name: name.to_string(), index });
        }
        Ok(t.data)
    }
}

impl VitWeights {
    /// Loads `dir/config.json` and `dir/model.safetensors`.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
        let config = VitConfig::from_json(&text, &cfg_path.display().to_string())?;
        let st = SafeTensors::read(dir.join("model.safetensors"))?;
        Self::from_parts(config, &st)
    }

    /// Builds the weights from a parsed config and safetensors file (e.g. fetched bytes in a browser).
    pub fn from_parts(config: VitConfig, st: &SafeTensors) -> Result<Self> {
        let r = Reader { st, shapes: vit_tensor_shapes(&config).into_iter().collect() };
        let c = &config;
        let d = c.hidden_size;
        let mut blocks = Vec::with_capacity(c.num_layers);
        for k in 0..c.num_layers {
            let pre = format!("Encoder/encoderblock_{k}/");
            let att = format!("{pre}MultiHeadDotProductAttention_1/");
            let q = r.get(&format!("{att}query/kernel"))?;
            let kk = r.get(&format!("{att}key/kernel"))?;
            let v = r.get(&format!("{att}value/kernel"))?;
            let mut qkv_kernel = Vec::with_capacity(3 * d * d);
            for row in 0..d {
                for t in [&q, &kk, &v] {
                    qkv_kernel.extend_from_slice(&t[row * d..(row + 1) * d]);
                }
            }
            let mut qkv_bias = r.get(&format!("{att}query/bias"))?;
            qkv_bias.extend(r.get(&format!("{att}key/bias"))?);
            qkv_bias.extend(r.get(&format!("{att}value/bias"))?);
            let mlp = if let (true, Some(router)) = (c.is_moe(k), c.router) {
                let mp = format!("{pre}Moe/");
                let (n, h) = (c.num_experts, c.expert_mlp_dim);
                let w = SparseMoeWeights {
                    d,
                    n,
                    h,
                    router,
                    group_size: c.group_size,
                    wr: r.get(&format!("{mp}{ROUTER_KERNEL}"))?,
                    w0: r.get(&format!("{mp}Mlp/Dense_0/kernel"))?,
                    b0: r.get(&format!("{mp}Mlp/Dense_0/bias"))?,
                    w1: r.get(&format!("{mp}Mlp/Dense_1/kernel"))?,
                    b1: r.get(&format!("{mp}Mlp/Dense_1/bias"))?,
                    gelu: c.gelu,
                };
                w.validate().map_err(|e| e.in_context(format!("{}: layer {}", st.context(), mp.trim_end_matches('/'))))?;
                BlockMlp::Sparse(w)
            } else if c.is_moe(k) {
                let moe_pre = format!("{pre}Moe/");
                let w = SoftMoeWeights::from_safetensors(st, &moe_pre)?;
                let want = (d, c.num_experts, c.slots_per_expert, c.expert_mlp_dim);
                if (w.d, w.n, w.p, w.h) != want {
                    return Err(Error::Shape {
                        context: st.context().to_string(),
                        name: format!("{moe_pre}Router/mu and Mlp kernels"),
                        found: vec![w.d, w.n, w.p, w.h],
                        expected: format!("d, n, p, h = {want:?} from the config"),
                    });
                }
                BlockMlp::SoftMoe(SoftMoeWeights { gelu: c.gelu, normalize: c.normalize, ..w })
            } else {
                let mp = format!("{pre}MlpBlock_3/");
                BlockMlp::Dense {
                    w0: r.get(&format!("{mp}Dense_0/kernel"))?,
                    b0: r.get(&format!("{mp}Dense_0/bias"))?,
                    w1: r.get(&format!("{mp}Dense_1/kernel"))?,
                    b1: r.get(&format!("{mp}Dense_1/bias"))?,
                }
            };
            blocks.push(BlockWeights {
                ln0_scale: r.get(&format!("{pre}LayerNorm_0/scale"))?,
                ln0_bias: r.get(&format!("{pre}LayerNorm_0/bias"))?,
                qkv_kernel,
                qkv_bias,
                out_kernel: r.get(&format!("{att}out/kernel"))?,
                out_bias: r.get(&format!("{att}out/bias"))?,
                ln2_scale: r.get(&format!("{pre}LayerNorm_2/scale"))?,
                ln2_bias: r.get(&format!("{pre}LayerNorm_2/bias"))?,
                mlp,
            });
        }
        Ok(VitWeights {
            embedding_kernel: r.get("embedding/kernel")?,
            embedding_bias: r.get("embedding/bias")?,
            pos_embedding: r.get("Encoder/posembed_input/pos_embedding")?,
            norm_scale: r.get("Encoder/encoder_norm/scale")?,
            norm_bias: r.get("Encoder/encoder_norm/bias")?,
            head_kernel: r.get("head/kernel")?,
            head_bias: r.get("head/bias")?,
            blocks,
            config,
        })
    }

    /// Serialises the weights under SPEC §2's names (q, k and v split again).
    pub fn to_safetensors(&self) -> Vec<u8> {
        let c = &self.config;
        let d = c.hidden_size;
        // Each field under its name; the shapes come from `vit_tensor_shapes`, the one list.
        let mut data: HashMap<String, Vec<f32>> = HashMap::new();
        let mut put = |name: String, v: &[f32]| data.insert(name, v.to_vec());
        put("embedding/kernel".into(), &self.embedding_kernel);
        put("embedding/bias".into(), &self.embedding_bias);
        put("Encoder/posembed_input/pos_embedding".into(), &self.pos_embedding);
        for (k, b) in self.blocks.iter().enumerate() {
            let pre = format!("Encoder/encoderblock_{k}/");
            let att = format!("{pre}MultiHeadDotProductAttention_1/");
            for (part, name) in ["query", "key", "value"].iter().enumerate() {
                let kernel: Vec<f32> =
                    (0..d).flat_map(|row| b.qkv_kernel[row * 3 * d + part * d..row * 3 * d + (part + 1) * d].to_vec()).collect();
                put(format!("{att}{name}/kernel"), &kernel);
                put(format!("{att}{name}/bias"), &b.qkv_bias[part * d..(part + 1) * d]);
            }
            put(format!("{att}out/kernel"), &b.out_kernel);
            put(format!("{att}out/bias"), &b.out_bias);
            put(format!("{pre}LayerNorm_0/scale"), &b.ln0_scale);
            put(format!("{pre}LayerNorm_0/bias"), &b.ln0_bias);
            put(format!("{pre}LayerNorm_2/scale"), &b.ln2_scale);
            put(format!("{pre}LayerNorm_2/bias"), &b.ln2_bias);
            let experts = match &b.mlp {
                BlockMlp::Dense { w0, b0, w1, b1 } => {
                    put(format!("{pre}MlpBlock_3/Dense_0/kernel"), w0);
                    put(format!("{pre}MlpBlock_3/Dense_0/bias"), b0);
                    put(format!("{pre}MlpBlock_3/Dense_1/kernel"), w1);
                    put(format!("{pre}MlpBlock_3/Dense_1/bias"), b1);
                    None
                }
                BlockMlp::SoftMoe(w) => {
                    put(format!("{pre}Moe/{}", soft_moe::MU), &w.mu);
                    put(format!("{pre}Moe/{}", soft_moe::SCALE), &[w.scale]);
                    Some([&w.w0, &w.b0, &w.w1, &w.b1])
                }
                BlockMlp::Sparse(w) => {
                    put(format!("{pre}Moe/{ROUTER_KERNEL}"), &w.wr);
                    Some([&w.w0, &w.b0, &w.w1, &w.b1])
                }
            };
            for (name, v) in [soft_moe::W0, soft_moe::B0, soft_moe::W1, soft_moe::B1].into_iter().zip(experts.into_iter().flatten()) {
                put(format!("{pre}Moe/{name}"), v);
            }
        }
        put("Encoder/encoder_norm/scale".into(), &self.norm_scale);
        put("Encoder/encoder_norm/bias".into(), &self.norm_bias);
        put("head/kernel".into(), &self.head_kernel);
        put("head/bias".into(), &self.head_bias);
        // A field missing from the list (or the list naming one not here) is a bug, caught by the
        // round-trip tests; an empty tensor then fails every loader's shape check loudly.
        let tensors: Vec<(String, Tensor)> = vit_tensor_shapes(c)
            .into_iter()
            .map(|(name, shape)| {
                let data = data.remove(&name).unwrap_or_default();
                (name, Tensor { shape, data })
            })
            .collect();
        debug_assert!(data.is_empty(), "tensors outside vit_tensor_shapes: {:?}", data.keys());
        let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        crate::weights::safetensors::serialize(&refs, &Default::default())
    }

    /// The GELU of the dense MLP blocks.
    pub fn gelu(&self) -> Gelu {
        self.config.gelu
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tensor_list_is_what_the_shipped_files_hold_and_count() {
        for name in ["dense-vit", "soft-moe-vit", "tokens-choice-vit", "experts-choice-vit"] {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("weights").join(name);
            let text = std::fs::read_to_string(dir.join("config.json")).unwrap();
            let config = VitConfig::from_json(&text, name).unwrap();
            let st = SafeTensors::read(dir.join("model.safetensors")).unwrap();
            let listed: HashMap<String, Vec<usize>> = vit_tensor_shapes(&config).into_iter().collect();
            let stored: HashMap<String, Vec<usize>> = st.entries().iter().map(|e| (e.name.clone(), e.shape.clone())).collect();
            assert_eq!(listed, stored, "{name}");
            let recorded = serde_json::from_str::<serde_json::Value>(&text).unwrap()["training"]["parameters"].as_u64();
            let count: usize = listed.values().map(|s| s.iter().product::<usize>()).sum();
            assert_eq!(Some(count as u64), recorded, "{name}");
            // Round trip through the loader, which reads every listed tensor at its listed shape.
            let w = VitWeights::from_parts(config, &st).unwrap();
            let again = SafeTensors::parse(w.to_safetensors(), name).unwrap();
            assert_eq!(again.entries().len(), listed.len(), "{name}");
        }
    }
}
