//! The Soft MoE ViT (SPEC §2) and the Soft MoE layer (SPEC §1) with candle; softmax, LayerNorm,
//! GELU and L2 normalisation are the fused ops of `ops.rs` (candle-nn's have no backward pass).

use crate::ops;
#[cfg(test)]
use candle_core::D;
use candle_core::{DType, Device, Result, Tensor, Var};
use softmoe::data::CLASS_NAMES;
use softmoe::model::{VitConfig, LAYER_NORM_EPS as LN_EPS};
use softmoe::reference::NORM_EPS;
pub use softmoe::routing::Router;
use softmoe::weights::vit_tensor_shapes;
use std::collections::{BTreeMap, HashMap};

/// Hyper-parameters: the library's config.json (`softmoe::model::VitConfig`, which reads and writes
/// it); the trainer trains those that [`trainable`] accepts.
pub type Config = VitConfig;

/// Which MLP the second half of the blocks gets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Moe {
    Dense,
    Soft,
    Sparse { router: Router, group_size: usize },
}

/// A ViT on 28×28 Fashion-MNIST in 4×4 patches, with MoE blocks (of kind `moe`) in the second half
/// or all dense; tanh GELU, normalised Soft MoE routers and LayerNorm's eps of 1e-6.
pub fn config(d: usize, layers: usize, heads: usize, mlp: usize, experts: usize, slots: usize, moe: Moe) -> Config {
    VitConfig {
        image_size: 28,
        channels: 1,
        patch_size: 4,
        hidden_size: d,
        num_layers: layers,
        num_heads: heads,
        mlp_dim: mlp,
        num_classes: CLASS_NAMES.len(),
        moe_layers: if moe == Moe::Dense { vec![] } else { (layers / 2..layers).collect() },
        num_experts: experts,
        slots_per_expert: if matches!(moe, Moe::Sparse { .. }) { 0 } else { slots },
        expert_mlp_dim: mlp,
        gelu: softmoe::Gelu::Tanh,
        normalize: true,
        layer_norm_eps: LN_EPS as f32,
        class_names: CLASS_NAMES.iter().map(|s| s.to_string()).collect(),
        router: match moe {
            Moe::Sparse { router, .. } => Some(router),
            _ => None,
        },
        group_size: match moe {
            Moe::Sparse { group_size, .. } => group_size,
            _ => 0,
        },
        attention_qk_norm: false,
        classifier: softmoe::Pooling::Gap,
        dispatch_bfloat16: false,
        moe_variant: softmoe::SoftMoeVariant::Vmoe,
    }
}

/// Whether the trainer's model computes what `cfg` describes: tanh GELU, normalised Soft MoE
/// routers and LayerNorm's eps of 1e-6.
pub fn trainable(cfg: &Config) -> std::result::Result<(), String> {
    if cfg.gelu != softmoe::Gelu::Tanh {
        return Err("only gelu = tanh is supported by the trainer".into());
    }
    if !cfg.normalize {
        return Err("only normalize = true is supported by the trainer".into());
    }
    if cfg.layer_norm_eps != LN_EPS as f32 {
        return Err(format!("only layer_norm_eps = {LN_EPS} is supported by the trainer"));
    }
    if cfg.attention_qk_norm {
        return Err("attention_qk_norm is not supported by the trainer".into());
    }
    if cfg.dispatch_bfloat16 {
        return Err("dispatch_bfloat16 is not supported by the trainer (it trains the f32 math)".into());
    }
    if cfg.classifier != softmoe::Pooling::Gap {
        return Err(format!("only classifier = gap is supported by the trainer, not {}", cfg.classifier.name()));
    }
    Ok(())
}

/// Trainable values of the model (the sizes of `softmoe::weights::vit_tensor_shapes`).
pub fn parameter_count(cfg: &Config) -> usize {
    vit_tensor_shapes(cfg).iter().map(|(_, s)| s.iter().product::<usize>()).sum()
}

/// Deterministic random numbers for initialisation and shuffling: the library's trainer generator
/// (SplitMix64 from seed ^ 0x9E37_79B9_7F4A_7C15), so a seed gives the same model in both trainers.
pub use softmoe::train::init::TrainRng as Rng;

/// Fresh trainable parameters, keyed by SPEC §2 name.
pub fn init_params(cfg: &Config, seed: u64, dev: &Device) -> Result<BTreeMap<String, Var>> {
    let mut rng = Rng::new(seed);
    let mut out = BTreeMap::new();
    for (name, shape) in vit_tensor_shapes(cfg) {
        // The library's initialiser, value for value (softmoe train starts from the same model).
        let vals = softmoe::train::init::init_values(&name, &shape, cfg, &mut rng).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let t = Tensor::from_vec(vals, shape.as_slice(), dev)?;
        out.insert(name, Var::from_tensor(&t)?);
    }
    Ok(out)
}

/// A view of the weights by name (from Vars during training, or loaded from safetensors).
pub struct Weights(pub HashMap<String, Tensor>);

impl Weights {
    pub fn from_vars(vars: &BTreeMap<String, Var>) -> Self {
        Weights(vars.iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect())
    }

    /// Check presence, dtype and shape of every tensor against the config.
    pub fn check(&self, cfg: &Config) -> std::result::Result<(), String> {
        for (name, shape) in vit_tensor_shapes(cfg) {
            let t = self.0.get(&name).ok_or(format!("missing tensor {name}"))?;
            if t.dtype() != DType::F32 {
                return Err(format!("tensor {name}: dtype {:?}, want f32", t.dtype()));
            }
            let ok = t.dims() == shape.as_slice() || (shape.is_empty() && t.dims() == [1usize].as_slice());
            if !ok {
                return Err(format!("tensor {name}: shape {:?}, want {:?}", t.dims(), shape));
            }
        }
        Ok(())
    }

    fn get(&self, name: &str) -> Result<&Tensor> {
        self.0.get(name).ok_or_else(|| candle_core::Error::Msg(format!("missing tensor {name}")))
    }
}

/// Softmax along `dim`, from differentiable primitives (max is subtracted): the reference the
/// fused op is tested against.
#[cfg(test)]
pub fn softmax(x: &Tensor, dim: usize) -> Result<Tensor> {
    let max = x.max_keepdim(dim)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    let s = e.sum_keepdim(dim)?;
    e.broadcast_div(&s)
}

/// LayerNorm over the last dim (biased variance, eps inside the sqrt).
pub fn layer_norm(x: &Tensor, scale: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    ops::scale_shift(&ops::standardize_last_dim(x, eps)?, scale, bias)
}

/// LayerNorm from differentiable primitives: the reference the fused op is tested against.
#[cfg(test)]
pub fn layer_norm_reference(x: &Tensor, scale: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let xc = x.broadcast_sub(&mean)?;
    let var = xc.sqr()?.mean_keepdim(D::Minus1)?;
    let xn = xc.broadcast_div(&(var + eps)?.sqrt()?)?;
    xn.broadcast_mul(scale)?.broadcast_add(bias)
}

/// `x [.., in] · kernel [in, out] + bias [out]`, as one 2-D matmul over all leading dims
/// (candle's broadcast_matmul would run one small matmul per batch entry).
fn dense(x: &Tensor, kernel: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let dims = x.dims().to_vec();
    let (inner, rows) = (dims[dims.len() - 1], x.elem_count() / dims[dims.len() - 1]);
    let mut out_dims = dims;
    *out_dims.last_mut().expect("at least one dim") = kernel.dim(1)?;
    ops::add_bias(&x.reshape((rows, inner))?.matmul(kernel)?, bias, 1)?.reshape(out_dims)
}

/// The Soft MoE layer of SPEC §1, batched over examples (each example is one group).
/// x: [B, m, d]; mu: [d, n, p]; scale: [] or [1]; w0: [n, d, h]; b0: [n, h]; w1: [n, h, d];
/// b1: [n, d]. Returns Y: [B, m, d] (the residual is added by the caller).
pub fn soft_moe(x: &Tensor, mu: &Tensor, scale: &Tensor, w0: &Tensor, b0: &Tensor, w1: &Tensor, b1: &Tensor) -> Result<Tensor> {
    Ok(soft_moe_parts(x, mu, scale, w0, b0, w1, b1)?.2)
}

/// Like [`soft_moe`], also returning the dispatch weights D [B, m, n·p] and the combine
/// weights C [B, m, n·p].
pub fn soft_moe_parts(
    x: &Tensor,
    mu: &Tensor,
    scale: &Tensor,
    w0: &Tensor,
    b0: &Tensor,
    w1: &Tensor,
    b1: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (b, _m, d) = x.dims3()?;
    let (_, n, p) = mu.dims3()?;
    let slots = n * p;
    // X̂: tokens L2-normalised, eps inside the sqrt.
    let xn = ops::l2_normalize_last_dim(x, NORM_EPS)?;
    // Φ̂: columns of mu (flattened d × n·p, slot j = e·p + s) normalised.
    let mu = mu.reshape((d, slots))?;
    let mun = mu.broadcast_div(&(mu.sqr()?.sum_keepdim(0)? + NORM_EPS)?.sqrt()?)?;
    let scale = scale.reshape(())?;
    // L = scale · X̂ Φ̂ : [B, m, np]
    let logits = xn.reshape((b * _m, d))?.matmul(&mun)?.reshape((b, _m, slots))?.broadcast_mul(&scale)?;
    // Dispatch: softmax over tokens, computed on Lᵀ [B, np, m] so Dᵀ comes out directly.
    let dispatch_t = ops::softmax_last_dim(&logits.transpose(1, 2)?)?;
    // Combine: softmax over all slots, per token.
    let combine = ops::softmax_last_dim(&logits)?;
    // X̃ = Dᵀ X (un-normalised X): [B, np, d]
    let x_slots = dispatch_t.matmul(x)?;
    // Group slots by expert: [n, B·p, d]
    let xe = x_slots.reshape((b, n, p, d))?.transpose(0, 1)?.contiguous()?.reshape((n, b * p, d))?;
    let hdn = ops::add_bias(&xe.matmul(w0)?, b0, n)?;
    let hdn = ops::gelu(&hdn)?;
    let ye = ops::add_bias(&hdn.matmul(w1)?, b1, n)?;
    let y_slots = ye.reshape((n, b, p, d))?.transpose(0, 1)?.contiguous()?.reshape((b, slots, d))?;
    // Y = C Ỹ : [B, m, d]
    let y = combine.matmul(&y_slots)?;
    Ok((dispatch_t.transpose(1, 2)?, combine, y))
}

/// Multi-head dot-product self-attention (vmoe names, kernels [d, heads, d/heads]).
fn attention(x: &Tensor, w: &Weights, prefix: &str, heads: usize) -> Result<Tensor> {
    let (b, m, d) = x.dims3()?;
    let dh = d / heads;
    let proj = |name: &str| -> Result<Tensor> {
        let k = w.get(&format!("{prefix}/{name}/kernel"))?.reshape((d, d))?;
        let bias = w.get(&format!("{prefix}/{name}/bias"))?.reshape(d)?;
        dense(x, &k, &bias)?.reshape((b, m, heads, dh))?.transpose(1, 2)?.contiguous()
    };
    let q = (proj("query")? * (1.0 / (dh as f64).sqrt()))?;
    let k = proj("key")?;
    let v = proj("value")?;
    let att = ops::softmax_last_dim(&q.matmul(&k.t()?)?)?;
    let o = att.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape((b, m, d))?;
    let ok = w.get(&format!("{prefix}/out/kernel"))?.reshape((d, d))?;
    dense(&o, &ok, w.get(&format!("{prefix}/out/bias"))?)
}

/// Images [B, 28, 28] (or [B, 784]) in [0,1] → patch vectors [B, 49, P·P·C], token t = gy·7+gx,
/// each patch vector ordered (py, px, c).
pub fn patchify(images: &Tensor, cfg: &Config) -> Result<Tensor> {
    let b = images.dim(0)?;
    let (g, p, c) = (cfg.grid(), cfg.patch_size, cfg.channels);
    images.reshape((b, g, p, g, p, c))?.permute((0, 1, 3, 2, 4, 5))?.contiguous()?.reshape((b, g * g, p * p * c))
}

/// A sparse MoE layer (Tokens Choice or Experts Choice, SPEC-style names): x [B, m, d] with the
/// router kernel wr [d, n] and the experts as in Soft MoE. Returns y [B, m, d] and the router's
/// load-balancing loss (Switch-style n·Σ_e f_e·P_e, for Tokens Choice; zero for Experts Choice).
/// Routing (which token goes to which slot) follows `softmoe::routing` on the f32 gates and
/// carries no gradient; the gates scale the expert outputs and do.
#[allow(clippy::too_many_arguments)]
pub fn sparse_moe(
    x: &Tensor,
    wr: &Tensor,
    w0: &Tensor,
    b0: &Tensor,
    w1: &Tensor,
    b1: &Tensor,
    router: &Router,
    group_size: usize,
) -> Result<(Tensor, Tensor)> {
    let (b, m, d) = x.dims3()?;
    let n = wr.dim(1)?;
    let rows = b * m;
    let dev = x.device();
    let xf = x.reshape((rows, d))?;
    let gates = ops::softmax_last_dim(&xf.matmul(wr)?)?;
    let gv: Vec<f32> = gates.flatten_all()?.to_vec1()?;
    // Slots are laid out expert-major: expert e's buffer holds every group's capacity in turn.
    let groups = softmoe::routing::groups(b, m, group_size);
    let caps: Vec<usize> = groups.iter().map(|g| router.capacity(g.len(), n)).collect();
    let per_expert: usize = caps.iter().sum();
    let mut token_of = vec![rows as u32; n * per_expert]; // rows = the zero row appended to X
                                                          // The routed (token, expert) pairs only: the combine never touches the rows·n pairs that were not taken.
    let (mut pair_slot, mut pair_token, mut pair_gate) = (Vec::new(), Vec::new(), Vec::new());
    let mut offset = 0;
    for (g, cap) in groups.iter().zip(&caps) {
        let route = softmoe::routing::route(router, &gv[g.start * n..g.end * n], n);
        for (i, s) in route.iter().enumerate() {
            if let Some(s) = s {
                let (t, e) = (g.start + i / n, i % n);
                let slot = e * per_expert + offset + s;
                token_of[slot] = t as u32;
                pair_slot.push(slot as u32);
                pair_token.push(t as u32);
                pair_gate.push((t * n + e) as u32);
            }
        }
        offset += cap;
    }
    let pairs = pair_slot.len();
    let y = if pairs == 0 {
        Tensor::zeros((b, m, d), DType::F32, dev)?
    } else {
        let x_pad = Tensor::cat(&[&xf, &Tensor::zeros((1, d), DType::F32, dev)?], 0)?;
        let xe = x_pad.index_select(&Tensor::from_vec(token_of, n * per_expert, dev)?, 0)?.reshape((n, per_expert, d))?;
        let hdn = ops::gelu(&ops::add_bias(&xe.matmul(w0)?, b0, n)?)?;
        let ye = ops::add_bias(&hdn.matmul(w1)?, b1, n)?.reshape((n * per_expert, d))?;
        let picked = ye.index_select(&Tensor::from_vec(pair_slot, pairs, dev)?, 0)?;
        let g = gates.flatten_all()?.index_select(&Tensor::from_vec(pair_gate, pairs, dev)?, 0)?.reshape((pairs, 1))?;
        let zeros = Tensor::zeros((rows, d), DType::F32, dev)?;
        zeros.index_add(&Tensor::from_vec(pair_token, pairs, dev)?, &picked.broadcast_mul(&g)?, 0)?.reshape((b, m, d))?
    };
    let aux = match router {
        Router::TokensChoice { .. } => {
            let mut top = vec![0f32; n];
            for row in gv.chunks(n) {
                top[softmoe::model::argmax(row)] += 1.0 / rows as f32;
            }
            let frac = Tensor::from_vec(top, n, dev)?;
            ((gates.mean(0)? * frac)?.sum_all()? * n as f64)?
        }
        Router::ExpertsChoice { .. } => Tensor::zeros((), DType::F32, dev)?,
    };
    Ok((y, aux))
}

/// Stochastic depth (training only): per image and residual branch, 0 (the branch is dropped) or
/// 1/(1 − rate) (kept and rescaled). `keep` is laid out [block][attention, MLP][image of the batch];
/// this shard's images start at `offset`.
pub struct DropPath<'a> {
    pub keep: &'a [f32],
    pub batch: usize,
    pub offset: usize,
}

impl DropPath<'_> {
    /// Keep factors for a batch of `b` images: block k drops each branch with probability
    /// rate·k/(layers − 1), rising from 0 at the first block to `rate` at the last (as DeiT does).
    /// Nothing (and no draw from `rng`) when `rate` is 0.
    pub fn sample(rng: &mut Rng, b: usize, layers: usize, rate: f64) -> Vec<f32> {
        if rate == 0.0 {
            return Vec::new();
        }
        let mut keep = Vec::with_capacity(layers * 2 * b);
        for k in 0..layers {
            let r = rate * k as f64 / (layers.max(2) - 1) as f64;
            for _ in 0..2 * b {
                keep.push(if rng.uniform() < r { 0.0 } else { (1.0 / (1.0 - r)) as f32 });
            }
        }
        keep
    }

    /// The [len] factors of block k's branch (0 attention, 1 MLP) for this shard.
    fn mask(&self, k: usize, branch: usize, len: usize, dev: &Device) -> Result<Tensor> {
        let at = (k * 2 + branch) * self.batch + self.offset;
        Tensor::from_slice(&self.keep[at..at + len], len, dev)
    }
}

/// The full ViT: images [B, 28, 28] → logits [B, classes].
pub fn forward(images: &Tensor, w: &Weights, cfg: &Config) -> Result<Tensor> {
    Ok(forward_with_aux(images, w, cfg, None)?.0)
}

/// As [`forward`], also returning the sum of the sparse routers' load-balancing losses; with `drop`,
/// the residual branches are dropped per image (training).
pub fn forward_with_aux(images: &Tensor, w: &Weights, cfg: &Config, drop: Option<&DropPath>) -> Result<(Tensor, Tensor)> {
    let bsz = images.dim(0)?;
    // x + branch, with the branch dropped or rescaled per image when training with stochastic depth.
    let residual = |x: Tensor, y: Tensor, k: usize, which: usize| -> Result<Tensor> {
        match drop {
            Some(dp) => ops::scaled_residual(&x, &y, &dp.mask(k, which, bsz, images.device())?),
            None => x + y,
        }
    };
    let mut aux = Tensor::zeros((), DType::F32, images.device())?;
    let d = cfg.hidden_size;
    let patches = patchify(images, cfg)?;
    let ek = w.get("embedding/kernel")?.reshape((cfg.patch_dim(), d))?;
    let mut x = ops::add_bias(&dense(&patches, &ek, w.get("embedding/bias")?)?, w.get("Encoder/posembed_input/pos_embedding")?, 1)?;
    for k in 0..cfg.num_layers {
        let b = format!("Encoder/encoderblock_{k}");
        let ln = |x: &Tensor, n: &str| -> Result<Tensor> {
            layer_norm(x, w.get(&format!("{b}/{n}/scale"))?, w.get(&format!("{b}/{n}/bias"))?, LN_EPS)
        };
        let y = ln(&x, "LayerNorm_0")?;
        x = residual(x, attention(&y, w, &format!("{b}/MultiHeadDotProductAttention_1"), cfg.num_heads)?, k, 0)?;
        let y = ln(&x, "LayerNorm_2")?;
        let y = if let (true, Some(router)) = (cfg.is_moe(k), cfg.router) {
            let g = |n: &str| w.get(&format!("{b}/Moe/{n}"));
            let (y, a) = sparse_moe(
                &y,
                g("Router/dense/kernel")?,
                g("Mlp/Dense_0/kernel")?,
                g("Mlp/Dense_0/bias")?,
                g("Mlp/Dense_1/kernel")?,
                g("Mlp/Dense_1/bias")?,
                &router,
                cfg.group_size,
            )?;
            aux = (aux + a)?;
            y
        } else if cfg.is_moe(k) {
            let g = |n: &str| w.get(&format!("{b}/Moe/{n}"));
            soft_moe(
                &y,
                g("Router/mu")?,
                g("Router/scale")?,
                g("Mlp/Dense_0/kernel")?,
                g("Mlp/Dense_0/bias")?,
                g("Mlp/Dense_1/kernel")?,
                g("Mlp/Dense_1/bias")?,
            )?
        } else {
            let g = |n: &str| w.get(&format!("{b}/MlpBlock_3/{n}"));
            let hdn = ops::gelu(&dense(&y, g("Dense_0/kernel")?, g("Dense_0/bias")?)?)?;
            dense(&hdn, g("Dense_1/kernel")?, g("Dense_1/bias")?)?
        };
        x = residual(x, y, k, 1)?;
    }
    let x = layer_norm(&x, w.get("Encoder/encoder_norm/scale")?, w.get("Encoder/encoder_norm/bias")?, LN_EPS)?;
    let pooled = x.mean(1)?;
    Ok((dense(&pooled, w.get("head/kernel")?, w.get("head/bias")?)?, aux))
}
