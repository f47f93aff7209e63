//! A ViT's weights (SPEC §2 names), every tensor checked for presence, dtype, shape and finiteness.

use std::collections::HashMap;
use std::path::Path;

use crate::config::{Gelu, Pooling, SoftMoeVariant, VitConfig};
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::weights::{check_unused, soft_moe, LoadOptions, SafeTensors, SoftMoeWeights, SparseMoeWeights, ROUTER_KERNEL};

/// Which names a file gives the three parts of an encoder block that the two Flax ViTs name
/// differently; `LayerNorm_0`, `Moe/...`, the embedding, the position embedding, the final norm and
/// the head are the same in both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum BlockNames {
    /// `MultiHeadDotProductAttention_1`, `LayerNorm_2`, `MlpBlock_3`: the published
    /// google-research/vision_transformer checkpoints (`Encoder1DBlock`) and the trainer's files.
    #[default]
    Vit,
    /// `SelfAttention`, `LayerNorm_1`, `Mlp`: vmoe's `VisionTransformerMoe` (`vmoe/nn/vit_moe.py`).
    Vmoe,
}

impl BlockNames {
    /// The self-attention of a block.
    pub fn attention(self) -> &'static str {
        match self {
            BlockNames::Vit => "MultiHeadDotProductAttention_1",
            BlockNames::Vmoe => "SelfAttention",
        }
    }

    /// The LayerNorm before the MLP (or MoE).
    pub fn mlp_norm(self) -> &'static str {
        match self {
            BlockNames::Vit => "LayerNorm_2",
            BlockNames::Vmoe => "LayerNorm_1",
        }
    }

    /// A dense block's MLP.
    pub fn dense_mlp(self) -> &'static str {
        match self {
            BlockNames::Vit => "MlpBlock_3",
            BlockNames::Vmoe => "Mlp",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BlockNames::Vit => "the ViT checkpoints' names",
            BlockNames::Vmoe => "vmoe's names",
        }
    }

    /// The naming of `st`'s encoder blocks, by the names it holds: vmoe's when any block tensor
    /// has one of them, else the ViT checkpoints'. A file holding some of each is refused, naming a
    /// tensor of each.
    pub fn detect(st: &SafeTensors) -> Result<Self> {
        let mut found: [Option<&str>; 2] = [None, None];
        for e in st.entries() {
            // `Encoder/encoderblock_{k}/<part>/...`: the part right after the block.
            let Some(part) = e.name.strip_prefix("Encoder/encoderblock_").and_then(|r| r.split('/').nth(1)) else {
                continue;
            };
            for (i, names) in [BlockNames::Vit, BlockNames::Vmoe].into_iter().enumerate() {
                if [names.attention(), names.mlp_norm(), names.dense_mlp()].contains(&part) {
                    found[i].get_or_insert(e.name.as_str());
                }
            }
        }
        match found {
            [Some(vit), Some(vmoe)] => Err(Error::input(
                st.context(),
                "one naming of the encoder blocks: the ViT checkpoints' (`MultiHeadDotProductAttention_1`, `LayerNorm_2`, \
                 `MlpBlock_3`) or vmoe's (`SelfAttention`, `LayerNorm_1`, `Mlp`)",
                format!("both: `{vit}` has the ViT checkpoints' names and `{vmoe}` vmoe's"),
            )),
            [_, Some(_)] => Ok(BlockNames::Vmoe),
            _ => Ok(BlockNames::Vit),
        }
    }
}

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

/// LayerNorm scales on each head's queries and keys (`query_ln/scale`, `key_ln/scale`, [head_dim]
/// each, no bias), with `attention_qk_norm`.
#[derive(Clone, Debug, PartialEq)]
pub struct QkNorm {
    pub query: Vec<f32>,
    pub key: Vec<f32>,
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
    /// With `attention_qk_norm`: the attention's LayerNorm scales on queries and keys.
    pub qk_norm: Option<QkNorm>,
    pub ln2_scale: Vec<f32>,
    pub ln2_bias: Vec<f32>,
    pub mlp: BlockMlp,
}

/// vmoe's `MapHead` (classifier `map`): attention pooling of the encoder's output by the learned
/// `probe`, then `out + Mlp(LayerNorm(out))`. Tensors under `MapHead/`.
#[derive(Clone, Debug)]
pub struct MapHeadWeights {
    /// `probe` [1, 1, d]: the one query.
    pub probe: Vec<f32>,
    /// `MultiHeadDotProductAttention/{query,key,value}`, concatenated as a block's: [d, 3d], [3d].
    pub qkv_kernel: Vec<f32>,
    pub qkv_bias: Vec<f32>,
    /// `MultiHeadDotProductAttention/out`: [d, d], [d].
    pub out_kernel: Vec<f32>,
    pub out_bias: Vec<f32>,
    /// `MultiHeadDotProductAttention/{query,key}_ln/scale`, with `attention_qk_norm`.
    pub qk_norm: Option<QkNorm>,
    /// `LayerNorm/{scale,bias}` [d].
    pub ln_scale: Vec<f32>,
    pub ln_bias: Vec<f32>,
    /// `Mlp/Dense_0` [d, mlp_dim] + [mlp_dim], `Mlp/Dense_1` [mlp_dim, d] + [d] (the config's GELU).
    pub w0: Vec<f32>,
    pub b0: Vec<f32>,
    pub w1: Vec<f32>,
    pub b1: Vec<f32>,
}

/// All of a ViT's weights, in the layouts the kernels read.
#[derive(Clone, Debug)]
pub struct VitWeights {
    pub config: VitConfig,
    /// [P·P·C, d], rows in (py, px, c) order.
    pub embedding_kernel: Vec<f32>,
    pub embedding_bias: Vec<f32>,
    /// `cls` [1, 1, d], the class token of classifier `token`.
    pub cls: Option<Vec<f32>>,
    /// [seq_len, d]: with classifier `token`, row 0 is the class token's.
    pub pos_embedding: Vec<f32>,
    pub blocks: Vec<BlockWeights>,
    /// With classifier `map`: the attention-pooling head (boxed: most models have none).
    pub map_head: Option<Box<MapHeadWeights>>,
    /// The block naming the weights were read with, and are written back with.
    pub names: BlockNames,
    pub norm_scale: Vec<f32>,
    pub norm_bias: Vec<f32>,
    /// [d, classes].
    pub head_kernel: Vec<f32>,
    pub head_bias: Vec<f32>,
}

/// Every tensor of a ViT with this config under the ViT checkpoints' block names (SPEC §2), see
/// [`vit_tensor_shapes_as`].
pub fn vit_tensor_shapes(c: &VitConfig) -> Vec<(String, Vec<usize>)> {
    vit_tensor_shapes_as(c, BlockNames::Vit)
}

/// Every tensor of a ViT with this config, (name, shape), in the order the trainer initialises
/// them: the patch embedding and position embedding, then block by block its LayerNorms, attention
/// and MLP (dense, or `Moe` with a Soft MoE router's `mu` and rank-0 `scale` or a sparse router's
/// kernel), then the final norm and the head; the blocks' parts named as `names` says.
pub fn vit_tensor_shapes_as(c: &VitConfig, names: BlockNames) -> Vec<(String, Vec<usize>)> {
    let (p, d, heads, hd) = (c.patch_size, c.hidden_size, c.num_heads, c.head_dim());
    let mut v: Vec<(String, Vec<usize>)> = vec![
        ("embedding/kernel".into(), vec![p, p, c.channels, d]),
        ("embedding/bias".into(), vec![d]),
        ("Encoder/posembed_input/pos_embedding".into(), vec![1, c.seq_len(), d]),
    ];
    if c.classifier == Pooling::Token {
        v.push(("cls".into(), vec![1, 1, d]));
    }
    // An attention's tensors under `att` (with its `/`).
    let attention = |v: &mut Vec<(String, Vec<usize>)>, att: &str| {
        for q in ["query", "key", "value"] {
            v.push((format!("{att}{q}/kernel"), vec![d, heads, hd]));
            v.push((format!("{att}{q}/bias"), vec![heads, hd]));
        }
        v.push((format!("{att}out/kernel"), vec![heads, hd, d]));
        v.push((format!("{att}out/bias"), vec![d]));
        if c.attention_qk_norm {
            v.push((format!("{att}query_ln/scale"), vec![hd]));
            v.push((format!("{att}key_ln/scale"), vec![hd]));
        }
    };
    for k in 0..c.num_layers {
        let pre = format!("Encoder/encoderblock_{k}/");
        for ln in ["LayerNorm_0", names.mlp_norm()] {
            v.push((format!("{pre}{ln}/scale"), vec![d]));
            v.push((format!("{pre}{ln}/bias"), vec![d]));
        }
        attention(&mut v, &format!("{pre}{}/", names.attention()));
        if c.is_moe(k) {
            let (n, h) = (c.num_experts, c.expert_mlp_dim);
            if c.router.is_some() {
                v.push((format!("{pre}Moe/{ROUTER_KERNEL}"), vec![d, n]));
            } else {
                v.push((format!("{pre}Moe/{}", soft_moe::MU), vec![d, n, c.slots_per_expert]));
                match c.moe_variant {
                    SoftMoeVariant::Vmoe => v.push((format!("{pre}Moe/{}", soft_moe::SCALE), vec![])),
                    SoftMoeVariant::SoftMoePytorch => {
                        v.push((format!("{pre}Moe/{}", soft_moe::NORM_SCALE), vec![d]));
                        v.push((format!("{pre}Moe/{}", soft_moe::SLOT_NORM_SCALE), vec![d]));
                    }
                }
            }
            v.push((format!("{pre}Moe/{}", soft_moe::W0), vec![n, d, h]));
            v.push((format!("{pre}Moe/{}", soft_moe::B0), vec![n, h]));
            v.push((format!("{pre}Moe/{}", soft_moe::W1), vec![n, h, d]));
            v.push((format!("{pre}Moe/{}", soft_moe::B1), vec![n, d]));
        } else {
            let mlp = format!("{pre}{}/", names.dense_mlp());
            v.push((format!("{mlp}Dense_0/kernel"), vec![d, c.mlp_dim]));
            v.push((format!("{mlp}Dense_0/bias"), vec![c.mlp_dim]));
            v.push((format!("{mlp}Dense_1/kernel"), vec![c.mlp_dim, d]));
            v.push((format!("{mlp}Dense_1/bias"), vec![d]));
        }
    }
    v.push(("Encoder/encoder_norm/scale".into(), vec![d]));
    v.push(("Encoder/encoder_norm/bias".into(), vec![d]));
    if c.classifier == Pooling::Map {
        v.push(("MapHead/probe".into(), vec![1, 1, d]));
        attention(&mut v, "MapHead/MultiHeadDotProductAttention/");
        v.push(("MapHead/LayerNorm/scale".into(), vec![d]));
        v.push(("MapHead/LayerNorm/bias".into(), vec![d]));
        v.push(("MapHead/Mlp/Dense_0/kernel".into(), vec![d, c.mlp_dim]));
        v.push(("MapHead/Mlp/Dense_0/bias".into(), vec![c.mlp_dim]));
        v.push(("MapHead/Mlp/Dense_1/kernel".into(), vec![c.mlp_dim, d]));
        v.push(("MapHead/Mlp/Dense_1/bias".into(), vec![d]));
    }
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

    /// The attention under `att` (with its `/`): q, k and v concatenated to [d, 3d] and [3d], the
    /// output projection, and the qk-norm scales when `qk_norm`.
    #[allow(clippy::type_complexity)]
    fn attention(&self, att: &str, d: usize, qk_norm: bool) -> Result<(Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>, Option<QkNorm>)> {
        let q = self.get(&format!("{att}query/kernel"))?;
        let k = self.get(&format!("{att}key/kernel"))?;
        let v = self.get(&format!("{att}value/kernel"))?;
        let mut qkv_kernel = Vec::with_capacity(3 * d * d);
        for row in 0..d {
            for t in [&q, &k, &v] {
                qkv_kernel.extend_from_slice(&t[row * d..(row + 1) * d]);
            }
        }
        let mut qkv_bias = self.get(&format!("{att}query/bias"))?;
        qkv_bias.extend(self.get(&format!("{att}key/bias"))?);
        qkv_bias.extend(self.get(&format!("{att}value/bias"))?);
        let norm = match qk_norm {
            true => Some(QkNorm { query: self.get(&format!("{att}query_ln/scale"))?, key: self.get(&format!("{att}key_ln/scale"))? }),
            false => None,
        };
        Ok((qkv_kernel, qkv_bias, self.get(&format!("{att}out/kernel"))?, self.get(&format!("{att}out/bias"))?, norm))
    }
}

/// Puts an attention's tensors under `att` (with its `/`), q, k and v split again.
#[allow(clippy::too_many_arguments)]
fn put_attention(
    put: &mut impl FnMut(String, &[f32]),
    att: &str,
    d: usize,
    qkv_kernel: &[f32],
    qkv_bias: &[f32],
    out_kernel: &[f32],
    out_bias: &[f32],
    qk_norm: Option<&QkNorm>,
) {
    for (part, name) in ["query", "key", "value"].iter().enumerate() {
        let kernel: Vec<f32> = (0..d).flat_map(|row| qkv_kernel[row * 3 * d + part * d..row * 3 * d + (part + 1) * d].to_vec()).collect();
        put(format!("{att}{name}/kernel"), &kernel);
        put(format!("{att}{name}/bias"), &qkv_bias[part * d..(part + 1) * d]);
    }
    put(format!("{att}out/kernel"), out_kernel);
    put(format!("{att}out/bias"), out_bias);
    if let Some(n) = qk_norm {
        put(format!("{att}query_ln/scale"), &n.query);
        put(format!("{att}key_ln/scale"), &n.key);
    }
}

impl VitWeights {
    /// Loads `dir/config.json` and `dir/model.safetensors`, refusing tensors the config does not use.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        Self::load_with(dir, LoadOptions::default())
    }

    /// As [`VitWeights::load`], with `options`.
    pub fn load_with(dir: impl AsRef<Path>, options: LoadOptions) -> Result<Self> {
        let dir = dir.as_ref();
        let cfg_path = dir.join("config.json");
        let text = std::fs::read_to_string(&cfg_path).map_err(|e| Error::io(&cfg_path, e))?;
        let config = VitConfig::from_json(&text, &cfg_path.display().to_string())?;
        let st = SafeTensors::read(dir.join("model.safetensors"))?;
        Self::from_parts_with(config, &st, options)
    }

    /// Builds the weights from a parsed config and safetensors file (e.g. fetched bytes in a
    /// browser), refusing tensors the config does not use.
    pub fn from_parts(config: VitConfig, st: &SafeTensors) -> Result<Self> {
        Self::from_parts_with(config, st, LoadOptions::default())
    }

    /// The one loader behind [`VitWeights::load`], the CLI and the browser's `Model.load`: the
    /// block names as the file has them ([`BlockNames::detect`]), every tensor of the config checked
    /// for presence, dtype, shape and finite values, and (unless `options` allow them) no tensor
    /// the config does not use.
    pub fn from_parts_with(config: VitConfig, st: &SafeTensors, options: LoadOptions) -> Result<Self> {
        let names = BlockNames::detect(st)?;
        let r = Reader { st, shapes: vit_tensor_shapes_as(&config, names).into_iter().collect() };
        check_unused(st, |name| r.shapes.contains_key(name), options)?;
        let c = &config;
        let d = c.hidden_size;
        let mut blocks = Vec::with_capacity(c.num_layers);
        for k in 0..c.num_layers {
            let pre = format!("Encoder/encoderblock_{k}/");
            let (qkv_kernel, qkv_bias, out_kernel, out_bias, qk_norm) =
                r.attention(&format!("{pre}{}/", names.attention()), d, c.attention_qk_norm)?;
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
                    dispatch_bfloat16: c.dispatch_bfloat16,
                };
                w.validate().map_err(|e| e.in_context(format!("{}: layer {}", st.context(), mp.trim_end_matches('/'))))?;
                BlockMlp::Sparse(w)
            } else if c.is_moe(k) {
                let moe_pre = format!("{pre}Moe/");
                let w = SoftMoeWeights::from_safetensors_as(st, &moe_pre, c.moe_variant)?;
                let want = (d, c.num_experts, c.slots_per_expert, c.expert_mlp_dim);
                if (w.d, w.n, w.p, w.h) != want {
                    return Err(Error::Shape {
                        context: st.context().to_string(),
                        name: format!("{moe_pre}Router/mu and Mlp kernels"),
                        found: vec![w.d, w.n, w.p, w.h],
                        expected: format!("d, n, p, h = {want:?} from the config"),
                    });
                }
                BlockMlp::SoftMoe(SoftMoeWeights { gelu: c.gelu, normalize: c.normalize, dispatch_bfloat16: c.dispatch_bfloat16, ..w })
            } else {
                let mp = format!("{pre}{}/", names.dense_mlp());
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
                out_kernel,
                out_bias,
                qk_norm,
                ln2_scale: r.get(&format!("{pre}{}/scale", names.mlp_norm()))?,
                ln2_bias: r.get(&format!("{pre}{}/bias", names.mlp_norm()))?,
                mlp,
            });
        }
        let map_head = match c.classifier {
            Pooling::Map => {
                let (qkv_kernel, qkv_bias, out_kernel, out_bias, qk_norm) =
                    r.attention("MapHead/MultiHeadDotProductAttention/", d, c.attention_qk_norm)?;
                Some(Box::new(MapHeadWeights {
                    probe: r.get("MapHead/probe")?,
                    qkv_kernel,
                    qkv_bias,
                    out_kernel,
                    out_bias,
                    qk_norm,
                    ln_scale: r.get("MapHead/LayerNorm/scale")?,
                    ln_bias: r.get("MapHead/LayerNorm/bias")?,
                    w0: r.get("MapHead/Mlp/Dense_0/kernel")?,
                    b0: r.get("MapHead/Mlp/Dense_0/bias")?,
                    w1: r.get("MapHead/Mlp/Dense_1/kernel")?,
                    b1: r.get("MapHead/Mlp/Dense_1/bias")?,
                }))
            }
            _ => None,
        };
        Ok(VitWeights {
            embedding_kernel: r.get("embedding/kernel")?,
            embedding_bias: r.get("embedding/bias")?,
            cls: if c.classifier == Pooling::Token { Some(r.get("cls")?) } else { None },
            pos_embedding: r.get("Encoder/posembed_input/pos_embedding")?,
            map_head,
            norm_scale: r.get("Encoder/encoder_norm/scale")?,
            norm_bias: r.get("Encoder/encoder_norm/bias")?,
            head_kernel: r.get("head/kernel")?,
            head_bias: r.get("head/bias")?,
            blocks,
            names,
            config,
        })
    }

    /// Serialises the weights under the names they were read with (`names`; q, k and v split again).
    pub fn to_safetensors(&self) -> Vec<u8> {
        let c = &self.config;
        let names = self.names;
        let d = c.hidden_size;
        // Each field under its name; the shapes come from `vit_tensor_shapes`, the one list.
        let mut data: HashMap<String, Vec<f32>> = HashMap::new();
        let mut put = |name: String, v: &[f32]| {
            data.insert(name, v.to_vec());
        };
        put("embedding/kernel".into(), &self.embedding_kernel);
        put("embedding/bias".into(), &self.embedding_bias);
        put("Encoder/posembed_input/pos_embedding".into(), &self.pos_embedding);
        if let Some(cls) = &self.cls {
            put("cls".into(), cls);
        }
        for (k, b) in self.blocks.iter().enumerate() {
            let pre = format!("Encoder/encoderblock_{k}/");
            let att = format!("{pre}{}/", names.attention());
            put_attention(&mut put, &att, d, &b.qkv_kernel, &b.qkv_bias, &b.out_kernel, &b.out_bias, b.qk_norm.as_ref());
            put(format!("{pre}LayerNorm_0/scale"), &b.ln0_scale);
            put(format!("{pre}LayerNorm_0/bias"), &b.ln0_bias);
            put(format!("{pre}{}/scale", names.mlp_norm()), &b.ln2_scale);
            put(format!("{pre}{}/bias", names.mlp_norm()), &b.ln2_bias);
            let experts = match &b.mlp {
                BlockMlp::Dense { w0, b0, w1, b1 } => {
                    let mlp = format!("{pre}{}/", names.dense_mlp());
                    put(format!("{mlp}Dense_0/kernel"), w0);
                    put(format!("{mlp}Dense_0/bias"), b0);
                    put(format!("{mlp}Dense_1/kernel"), w1);
                    put(format!("{mlp}Dense_1/bias"), b1);
                    None
                }
                BlockMlp::SoftMoe(w) => {
                    put(format!("{pre}Moe/{}", soft_moe::MU), &w.mu);
                    match w.variant {
                        SoftMoeVariant::Vmoe => put(format!("{pre}Moe/{}", soft_moe::SCALE), &[w.scale]),
                        SoftMoeVariant::SoftMoePytorch => {
                            put(format!("{pre}Moe/{}", soft_moe::NORM_SCALE), &w.norm_scale);
                            put(format!("{pre}Moe/{}", soft_moe::SLOT_NORM_SCALE), &w.slot_norm_scale);
                        }
                    }
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
        if let Some(h) = &self.map_head {
            put("MapHead/probe".into(), &h.probe);
            let att = "MapHead/MultiHeadDotProductAttention/";
            put_attention(&mut put, att, d, &h.qkv_kernel, &h.qkv_bias, &h.out_kernel, &h.out_bias, h.qk_norm.as_ref());
            put("MapHead/LayerNorm/scale".into(), &h.ln_scale);
            put("MapHead/LayerNorm/bias".into(), &h.ln_bias);
            put("MapHead/Mlp/Dense_0/kernel".into(), &h.w0);
            put("MapHead/Mlp/Dense_0/bias".into(), &h.b0);
            put("MapHead/Mlp/Dense_1/kernel".into(), &h.w1);
            put("MapHead/Mlp/Dense_1/bias".into(), &h.b1);
        }
        put("head/kernel".into(), &self.head_kernel);
        put("head/bias".into(), &self.head_bias);
        // A field missing from the list (or the list naming one not here) is a bug, caught by the
        // round-trip tests; an empty tensor then fails every loader's shape check loudly.
        let tensors: Vec<(String, Tensor)> = vit_tensor_shapes_as(c, names)
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
    use crate::random::{random_vit, Rng};
    use crate::weights::safetensors::serialize;

    /// A small Soft MoE ViT with a dense block and a Soft MoE block.
    fn small() -> VitWeights {
        let config = VitConfig::from_json(
            r#"{"image_size": 8, "channels": 1, "patch_size": 4, "hidden_size": 8, "num_layers": 2, "num_heads": 2,
                "mlp_dim": 12, "num_classes": 3, "moe_layers": [1], "num_experts": 2, "slots_per_expert": 2,
                "expert_mlp_dim": 6}"#,
            "config.json",
        )
        .unwrap();
        random_vit(&mut Rng::new(5), &config)
    }

    /// `w`'s tensors as a file named `model.safetensors`, after `edit`.
    fn file(w: &VitWeights, edit: impl FnOnce(&mut Vec<(String, Tensor)>)) -> SafeTensors {
        let st = SafeTensors::parse(w.to_safetensors(), "mem").unwrap();
        let mut tensors: Vec<(String, Tensor)> = st.entries().iter().map(|e| (e.name.clone(), st.tensor_f32(&e.name).unwrap())).collect();
        edit(&mut tensors);
        let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        SafeTensors::parse(serialize(&refs, &Default::default()), "model.safetensors").unwrap()
    }

    #[test]
    fn both_block_namings_load_and_each_is_written_back_as_read() {
        let vit = small();
        for names in [BlockNames::Vit, BlockNames::Vmoe] {
            let w = VitWeights { names, ..vit.clone() };
            let st = file(&w, |_| {});
            let (att, ln, mlp) = (names.attention(), names.mlp_norm(), names.dense_mlp());
            for part in [format!("{att}/query/kernel"), format!("{ln}/scale"), format!("{mlp}/Dense_0/kernel")] {
                assert!(st.entry(&format!("Encoder/encoderblock_0/{part}")).is_some(), "{names:?}: {part}");
            }
            assert_eq!(BlockNames::detect(&st).unwrap(), names);
            let back = VitWeights::from_parts(w.config.clone(), &st).unwrap();
            assert_eq!(back.names, names);
            assert_eq!(
                (back.blocks[0].qkv_kernel.clone(), back.blocks[1].ln2_scale.clone()),
                (vit.blocks[0].qkv_kernel.clone(), vit.blocks[1].ln2_scale.clone())
            );
            assert!(
                matches!((&back.blocks[0].mlp, &vit.blocks[0].mlp), (BlockMlp::Dense { w1: a, .. }, BlockMlp::Dense { w1: b, .. }) if a == b)
            );
            assert_eq!(back.to_safetensors(), w.to_safetensors(), "{names:?}: written back as read");
        }
        // vmoe's names inside a block are not confused with `Moe/Mlp/...` of a MoE block.
        let st = file(&VitWeights { names: BlockNames::Vit, ..vit }, |_| {});
        assert!(st.entry("Encoder/encoderblock_1/Moe/Mlp/Dense_0/kernel").is_some());
        assert_eq!(BlockNames::detect(&st).unwrap(), BlockNames::Vit);
    }

    #[test]
    fn class_tokens_map_heads_and_qk_norm_scales_are_read_and_written_under_vmoes_names() {
        for (classifier, qk) in [(Pooling::Token, false), (Pooling::Map, true), (Pooling::Gap, true)] {
            let mut config = small().config;
            config.classifier = classifier;
            config.attention_qk_norm = qk;
            let w = VitWeights { names: BlockNames::Vmoe, ..random_vit(&mut Rng::new(6), &config) };
            let st = file(&w, |_| {});
            let shape = |name: &str| st.entry(name).map(|e| e.shape.clone());
            assert_eq!(shape("cls"), (classifier == Pooling::Token).then(|| vec![1, 1, 8]), "{classifier:?}");
            assert_eq!(shape("Encoder/posembed_input/pos_embedding"), Some(vec![1, config.seq_len(), 8]));
            assert_eq!(shape("MapHead/probe"), (classifier == Pooling::Map).then(|| vec![1, 1, 8]));
            assert_eq!(shape("Encoder/encoderblock_1/SelfAttention/key_ln/scale"), qk.then(|| vec![4]));
            let map_qk = "MapHead/MultiHeadDotProductAttention/query_ln/scale";
            assert_eq!(shape(map_qk), (qk && classifier == Pooling::Map).then(|| vec![4]));
            let back = VitWeights::from_parts(config.clone(), &st).unwrap();
            assert_eq!((&back.cls, &back.blocks[1].qk_norm), (&w.cls, &w.blocks[1].qk_norm));
            assert_eq!(
                back.map_head.as_ref().map(|h| (&h.probe, &h.qkv_kernel, &h.qk_norm, &h.w1)),
                w.map_head.as_ref().map(|h| (&h.probe, &h.qkv_kernel, &h.qk_norm, &h.w1))
            );
            // The config without the option: the file's extra tensors are named, not dropped.
            let mut plain = config.clone();
            plain.attention_qk_norm = false;
            if classifier == Pooling::Token {
                plain.classifier = Pooling::Gap;
            }
            if plain != config {
                let e = VitWeights::from_parts(plain, &st).unwrap_err();
                assert!(matches!(&e, Error::UnusedTensor { .. } | Error::Shape { .. }), "{classifier:?}: {e:?}");
            }
        }
    }

    #[test]
    fn soft_moe_pytorch_blocks_are_read_and_written_with_their_norm_scales() {
        let json = r#"{"image_size": 8, "channels": 1, "patch_size": 4, "hidden_size": 8, "num_layers": 2, "num_heads": 2,
            "mlp_dim": 12, "num_classes": 3, "moe_layers": [0, 1], "num_experts": 2, "slots_per_expert": 2,
            "expert_mlp_dim": 6, "gelu": "erf", "classifier": "token", "moe_variant": "soft-moe-pytorch"}"#;
        let config = VitConfig::from_json(json, "config.json").unwrap();
        let w = VitWeights { names: BlockNames::Vmoe, ..random_vit(&mut Rng::new(6), &config) };
        let st = file(&w, |_| {});
        for k in 0..2 {
            for name in ["Norm/scale", "SlotNorm/scale"] {
                assert_eq!(st.entry(&format!("Encoder/encoderblock_{k}/Moe/{name}")).map(|e| e.shape.clone()), Some(vec![8]), "{name}");
            }
            assert!(st.entry(&format!("Encoder/encoderblock_{k}/Moe/Router/scale")).is_none());
        }
        let again = VitWeights::from_parts(config.clone(), &st).unwrap();
        assert_eq!(again.to_safetensors(), w.to_safetensors());
        for b in &again.blocks {
            assert!(matches!(&b.mlp, BlockMlp::SoftMoe(l) if l.variant == SoftMoeVariant::SoftMoePytorch && l.gelu == Gelu::Erf));
        }
        // Read as vmoe's layer, the file lacks `Router/scale`; its norm scales are named with the key to set.
        let vmoe = VitConfig { moe_variant: SoftMoeVariant::Vmoe, ..config };
        let e = VitWeights::from_parts(vmoe, &st).unwrap_err().to_string();
        assert!(e.contains("Moe/Norm/scale` is not used by the config") && e.contains("set `moe_variant` to `soft-moe-pytorch`"), "{e}");
    }

    #[test]
    fn a_file_mixing_the_namings_is_refused_naming_a_tensor_of_each() {
        let w = VitWeights { names: BlockNames::Vmoe, ..small() };
        let old = "Encoder/encoderblock_1/LayerNorm_2/scale";
        let st = file(&w, |t| {
            let ln = t.iter_mut().find(|(n, _)| n == "Encoder/encoderblock_1/LayerNorm_1/scale").unwrap();
            ln.0 = old.to_string();
        });
        let err = VitWeights::from_parts(w.config.clone(), &st).unwrap_err();
        let text = err.to_string();
        assert!(matches!(&err, Error::Input { what, .. } if what == "model.safetensors"), "{err:?}");
        assert!(text.contains(&format!("`{old}` has the ViT checkpoints' names")), "{text}");
        let vmoe = text.rsplit("names and `").next().unwrap();
        assert!(["LayerNorm_1/", "SelfAttention/", "/Mlp/"].iter().any(|p| vmoe.contains(p)) && vmoe.ends_with("` vmoe's"), "{text}");
    }

    #[test]
    fn a_tensor_the_config_does_not_use_is_refused_by_name_unless_allowed() {
        let w = VitWeights { names: BlockNames::Vmoe, ..small() };
        let q_ln = "Encoder/encoderblock_0/SelfAttention/query_ln/scale";
        let st = file(&w, |t| {
            t.push((q_ln.into(), Tensor::new(vec![4], vec![1.0; 4]).unwrap()));
            t.push(("pre_logits/kernel".into(), Tensor::zeros(vec![8, 8])));
        });
        match VitWeights::from_parts(w.config.clone(), &st) {
            Err(e @ Error::UnusedTensor { .. }) => {
                assert!(
                    matches!(&e, Error::UnusedTensor { context, name, unused: 2, .. } if context == "model.safetensors" && name == q_ln)
                );
                let text = e.to_string();
                assert!(text.contains("`attention_qk_norm`") && text.contains("--allow-unused"), "{text}");
            }
            other => panic!("expected Error::UnusedTensor, got {other:?}"),
        }
        let loaded = VitWeights::from_parts_with(w.config.clone(), &st, LoadOptions { allow_unused: true }).unwrap();
        assert_eq!(loaded.head_kernel, w.head_kernel);
    }

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
