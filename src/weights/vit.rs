//! A ViT's weights (SPEC §2 names), every tensor checked for presence, dtype, shape and finiteness.

use std::path::Path;

use crate::error::{Error, Result};
use crate::layers::Gelu;
use crate::model::VitConfig;
use crate::tensor::Tensor;
use crate::weights::{SafeTensors, SoftMoeWeights, SparseMoeWeights, ROUTER_KERNEL};

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

/// Reads tensors from one file, checking each against its expected shape.
struct Reader<'a> {
    st: &'a SafeTensors,
}

impl Reader<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let t: Tensor = self.st.tensor_f32(name)?;
        if t.shape != shape {
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
        let r = Reader { st };
        let c = &config;
        let (d, m, heads, hd) = (c.hidden_size, c.tokens(), c.num_heads, c.head_dim());
        let p = c.patch_size;
        let mut blocks = Vec::with_capacity(c.num_layers);
        for k in 0..c.num_layers {
            let pre = format!("Encoder/encoderblock_{k}/");
            let att = format!("{pre}MultiHeadDotProductAttention_1/");
            let q = r.get(&format!("{att}query/kernel"), &[d, heads, hd])?;
            let kk = r.get(&format!("{att}key/kernel"), &[d, heads, hd])?;
            let v = r.get(&format!("{att}value/kernel"), &[d, heads, hd])?;
            let mut qkv_kernel = Vec::with_capacity(3 * d * d);
            for row in 0..d {
                for t in [&q, &kk, &v] {
                    qkv_kernel.extend_from_slice(&t[row * d..(row + 1) * d]);
                }
            }
            let mut qkv_bias = r.get(&format!("{att}query/bias"), &[heads, hd])?;
            qkv_bias.extend(r.get(&format!("{att}key/bias"), &[heads, hd])?);
            qkv_bias.extend(r.get(&format!("{att}value/bias"), &[heads, hd])?);
            let mlp = if let (true, Some(router)) = (c.is_moe(k), c.router) {
                let mp = format!("{pre}Moe/");
                let (n, h) = (c.num_experts, c.expert_mlp_dim);
                let w = SparseMoeWeights {
                    d,
                    n,
                    h,
                    router,
                    group_size: c.group_size,
                    wr: r.get(&format!("{mp}{ROUTER_KERNEL}"), &[d, n])?,
                    w0: r.get(&format!("{mp}Mlp/Dense_0/kernel"), &[n, d, h])?,
                    b0: r.get(&format!("{mp}Mlp/Dense_0/bias"), &[n, h])?,
                    w1: r.get(&format!("{mp}Mlp/Dense_1/kernel"), &[n, h, d])?,
                    b1: r.get(&format!("{mp}Mlp/Dense_1/bias"), &[n, d])?,
                    gelu: c.gelu,
                };
                w.validate()?;
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
                    w0: r.get(&format!("{mp}Dense_0/kernel"), &[d, c.mlp_dim])?,
                    b0: r.get(&format!("{mp}Dense_0/bias"), &[c.mlp_dim])?,
                    w1: r.get(&format!("{mp}Dense_1/kernel"), &[c.mlp_dim, d])?,
                    b1: r.get(&format!("{mp}Dense_1/bias"), &[d])?,
                }
            };
            blocks.push(BlockWeights {
                ln0_scale: r.get(&format!("{pre}LayerNorm_0/scale"), &[d])?,
                ln0_bias: r.get(&format!("{pre}LayerNorm_0/bias"), &[d])?,
                qkv_kernel,
                qkv_bias,
                out_kernel: r.get(&format!("{att}out/kernel"), &[heads, hd, d])?,
                out_bias: r.get(&format!("{att}out/bias"), &[d])?,
                ln2_scale: r.get(&format!("{pre}LayerNorm_2/scale"), &[d])?,
                ln2_bias: r.get(&format!("{pre}LayerNorm_2/bias"), &[d])?,
                mlp,
            });
        }
        Ok(VitWeights {
            embedding_kernel: r.get("embedding/kernel", &[p, p, c.channels, d])?,
            embedding_bias: r.get("embedding/bias", &[d])?,
            pos_embedding: r.get("Encoder/posembed_input/pos_embedding", &[1, m, d])?,
            norm_scale: r.get("Encoder/encoder_norm/scale", &[d])?,
            norm_bias: r.get("Encoder/encoder_norm/bias", &[d])?,
            head_kernel: r.get("head/kernel", &[d, c.num_classes])?,
            head_bias: r.get("head/bias", &[c.num_classes])?,
            blocks,
            config,
        })
    }

    /// Serialises the weights under SPEC §2's names (q, k and v split again).
    pub fn to_safetensors(&self) -> Vec<u8> {
        let c = &self.config;
        let (d, heads, hd, p) = (c.hidden_size, c.num_heads, c.head_dim(), c.patch_size);
        let mut out: Vec<(String, Tensor)> = Vec::new();
        let mut put = |name: String, shape: Vec<usize>, data: &[f32]| out.push((name, Tensor { shape, data: data.to_vec() }));
        put("embedding/kernel".into(), vec![p, p, c.channels, d], &self.embedding_kernel);
        put("embedding/bias".into(), vec![d], &self.embedding_bias);
        put("Encoder/posembed_input/pos_embedding".into(), vec![1, c.tokens(), d], &self.pos_embedding);
        for (k, b) in self.blocks.iter().enumerate() {
            let pre = format!("Encoder/encoderblock_{k}/");
            let att = format!("{pre}MultiHeadDotProductAttention_1/");
            for (part, name) in ["query", "key", "value"].iter().enumerate() {
                let kernel: Vec<f32> =
                    (0..d).flat_map(|row| b.qkv_kernel[row * 3 * d + part * d..row * 3 * d + (part + 1) * d].to_vec()).collect();
                put(format!("{att}{name}/kernel"), vec![d, heads, hd], &kernel);
                put(format!("{att}{name}/bias"), vec![heads, hd], &b.qkv_bias[part * d..(part + 1) * d]);
            }
            put(format!("{att}out/kernel"), vec![heads, hd, d], &b.out_kernel);
            put(format!("{att}out/bias"), vec![d], &b.out_bias);
            put(format!("{pre}LayerNorm_0/scale"), vec![d], &b.ln0_scale);
            put(format!("{pre}LayerNorm_0/bias"), vec![d], &b.ln0_bias);
            put(format!("{pre}LayerNorm_2/scale"), vec![d], &b.ln2_scale);
            put(format!("{pre}LayerNorm_2/bias"), vec![d], &b.ln2_bias);
            match &b.mlp {
                BlockMlp::Dense { w0, b0, w1, b1 } => {
                    put(format!("{pre}MlpBlock_3/Dense_0/kernel"), vec![d, c.mlp_dim], w0);
                    put(format!("{pre}MlpBlock_3/Dense_0/bias"), vec![c.mlp_dim], b0);
                    put(format!("{pre}MlpBlock_3/Dense_1/kernel"), vec![c.mlp_dim, d], w1);
                    put(format!("{pre}MlpBlock_3/Dense_1/bias"), vec![d], b1);
                }
                BlockMlp::SoftMoe(w) => {
                    let (n, pp, h) = (w.n, w.p, w.h);
                    put(format!("{pre}Moe/Router/mu"), vec![d, n, pp], &w.mu);
                    put(format!("{pre}Moe/Router/scale"), vec![], &[w.scale]);
                    put(format!("{pre}Moe/Mlp/Dense_0/kernel"), vec![n, d, h], &w.w0);
                    put(format!("{pre}Moe/Mlp/Dense_0/bias"), vec![n, h], &w.b0);
                    put(format!("{pre}Moe/Mlp/Dense_1/kernel"), vec![n, h, d], &w.w1);
                    put(format!("{pre}Moe/Mlp/Dense_1/bias"), vec![n, d], &w.b1);
                }
                BlockMlp::Sparse(w) => {
                    let (n, h) = (w.n, w.h);
                    put(format!("{pre}Moe/{ROUTER_KERNEL}"), vec![d, n], &w.wr);
                    put(format!("{pre}Moe/Mlp/Dense_0/kernel"), vec![n, d, h], &w.w0);
                    put(format!("{pre}Moe/Mlp/Dense_0/bias"), vec![n, h], &w.b0);
                    put(format!("{pre}Moe/Mlp/Dense_1/kernel"), vec![n, h, d], &w.w1);
                    put(format!("{pre}Moe/Mlp/Dense_1/bias"), vec![n, d], &w.b1);
                }
            }
        }
        put("Encoder/encoder_norm/scale".into(), vec![d], &self.norm_scale);
        put("Encoder/encoder_norm/bias".into(), vec![d], &self.norm_bias);
        put("head/kernel".into(), vec![d, c.num_classes], &self.head_kernel);
        put("head/bias".into(), vec![c.num_classes], &self.head_bias);
        let refs: Vec<(&str, &Tensor)> = out.iter().map(|(n, t)| (n.as_str(), t)).collect();
        crate::weights::safetensors::serialize(&refs, &Default::default())
    }

    /// The GELU of the dense MLP blocks.
    pub fn gelu(&self) -> Gelu {
        self.config.gelu
    }
}
