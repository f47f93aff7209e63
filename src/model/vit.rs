//! `Vit`: the whole Soft MoE ViT on the GPU, one command submission per forward.
//!
//! Weights are uploaded once. Per (batch, maps wanted) a plan holds the activations, the Soft MoE
//! scratch shared by all MoE blocks, and every dispatch in order; a forward writes the images,
//! submits once and reads back the logits (and the dispatch/combine weights only when asked).

use std::sync::Arc;

use crate::config::{Pooling, VitConfig};
use crate::error::{Error, Result};
use crate::gpu::{chunk_size, GpuContext, PlanCache, PooledBuffer};
use crate::gpu::{READBACK, STORAGE};
use crate::kernels::execute;
use crate::kernels::gemm::{Activation, Matmul, MatrixView};
use crate::kernels::{add_position, attention, layer_norm, mean_pool, patchify, Op};
use crate::layers::soft_moe::Scratch;
use crate::layers::sparse_moe::{decode_slots, whole_groups, SparseScratch};
use crate::layers::stages::dense;
use crate::layers::{LayerOptions, SoftMoe, SparseMoe};
use crate::reference::{check_images, softmax_rows};
use crate::tensor::Tensor;
use crate::weights::{BlockMlp, VitWeights};

const MAX_PLANS: usize = 4;

/// The dispatch and combine weights of one Soft MoE block, [b, m, n, p] each.
#[derive(Clone, Debug)]
pub struct LayerMaps {
    pub block: usize,
    pub dispatch: Tensor,
    pub combine: Tensor,
}

/// The routing of one sparse MoE block: gates [b, m, n] and each (token, expert)'s slot.
#[derive(Clone, Debug)]
pub struct LayerRoutes {
    pub block: usize,
    pub gates: Tensor,
    pub slots: Vec<Option<u32>>,
}

/// Logits and probabilities [b, classes], the predicted classes, and the maps when asked
/// (Soft MoE blocks' dispatch/combine in `maps`, sparse blocks' routing in `routes`).
#[derive(Clone, Debug)]
pub struct VitOutput {
    pub logits: Tensor,
    pub probs: Tensor,
    pub predictions: Vec<usize>,
    pub maps: Vec<LayerMaps>,
    pub routes: Vec<LayerRoutes>,
}

enum Mlp {
    Dense { w0: wgpu::Buffer, b0: wgpu::Buffer, w1: wgpu::Buffer, b1: wgpu::Buffer },
    SoftMoe(SoftMoe),
    // Boxed: a sparse layer keeps its routing config beside its buffers, a Soft MoE layer only sizes.
    Sparse(Box<SparseMoe>),
}

struct Block {
    ln0: wgpu::Buffer,
    qkv_w: wgpu::Buffer,
    qkv_b: wgpu::Buffer,
    out_w: wgpu::Buffer,
    out_b: wgpu::Buffer,
    /// `query_ln/scale` then `key_ln/scale`, with `attention_qk_norm`.
    qk_scales: Option<wgpu::Buffer>,
    ln2: wgpu::Buffer,
    mlp: Mlp,
}

/// vmoe's `MapHead` on the device.
struct MapHead {
    /// The probe's query, probe · W_q + b_q [d]: input-independent, computed once at upload.
    q: wgpu::Buffer,
    /// Key and value projections, [d, 2d] (k | v per row) and [2d].
    kv_w: wgpu::Buffer,
    kv_b: wgpu::Buffer,
    out_w: wgpu::Buffer,
    out_b: wgpu::Buffer,
    qk_scales: Option<wgpu::Buffer>,
    ln: wgpu::Buffer,
    w0: wgpu::Buffer,
    b0: wgpu::Buffer,
    w1: wgpu::Buffer,
    b1: wgpu::Buffer,
}

/// A ViT with its weights resident on one device.
pub struct Vit {
    ctx: Arc<GpuContext>,
    config: VitConfig,
    embedding_w: wgpu::Buffer,
    embedding_b: wgpu::Buffer,
    /// The position embedding [seq_len, d]; with a class token its row 0 holds cls + position 0.
    pos: wgpu::Buffer,
    blocks: Vec<Block>,
    // Boxed: most models have none, and `Classifier` holds a `Vit` by value.
    map: Option<Box<MapHead>>,
    norm: wgpu::Buffer,
    head_w: wgpu::Buffer,
    head_b: wgpu::Buffer,
    plans: PlanCache<(usize, bool), Plan>,
}

struct Plan {
    images: PooledBuffer,
    logits: PooledBuffer,
    /// Per Soft MoE block: (block, dispatch, combine); shared buffers unless maps were asked for.
    maps: Vec<(usize, Arc<PooledBuffer>, Arc<PooledBuffer>)>,
    /// Per sparse block: (block, gates, slots), likewise.
    routes: Vec<(usize, Arc<PooledBuffer>, Arc<PooledBuffer>)>,
    staging: PooledBuffer,
    ops: Vec<Op>,
    _activations: Vec<PooledBuffer>,
    _scratch: Option<Scratch>,
    _sparse_scratch: Option<SparseScratch>,
}

impl Vit {
    /// Uploads `weights` to the device of `ctx`.
    pub async fn new(ctx: Arc<GpuContext>, weights: &VitWeights) -> Result<Self> {
        Self::with_options(ctx, weights, LayerOptions::default()).await
    }

    /// As `new`; `options` apply to the Soft MoE blocks (e.g. f16 expert weights).
    pub async fn with_options(ctx: Arc<GpuContext>, weights: &VitWeights, options: LayerOptions) -> Result<Self> {
        let upload = |name: &str, data: &[f32]| ctx.upload(name, bytemuck::cast_slice(data));
        let affine = |name: &str, scale: &[f32], bias: &[f32]| upload(name, &[scale, bias].concat());
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mut blocks = Vec::with_capacity(weights.blocks.len());
        for (k, b) in weights.blocks.iter().enumerate() {
            let name = |s: &str| format!("Encoder/encoderblock_{k}/{s}");
            let att = weights.names.attention();
            let mlp = match &b.mlp {
                BlockMlp::Dense { w0, b0, w1, b1 } => Mlp::Dense {
                    w0: upload(&name("MlpBlock_3/Dense_0/kernel"), w0)?,
                    b0: upload(&name("MlpBlock_3/Dense_0/bias"), b0)?,
                    w1: upload(&name("MlpBlock_3/Dense_1/kernel"), w1)?,
                    b1: upload(&name("MlpBlock_3/Dense_1/bias"), b1)?,
                },
                BlockMlp::SoftMoe(w) => Mlp::SoftMoe(SoftMoe::with_options(ctx.clone(), w, options).await?),
                BlockMlp::Sparse(w) => Mlp::Sparse(Box::new(SparseMoe::new(ctx.clone(), w).await?)),
            };
            blocks.push(Block {
                ln0: affine(&name("LayerNorm_0"), &b.ln0_scale, &b.ln0_bias)?,
                qkv_w: upload(&name(&format!("{att}/{{query,key,value}}/kernel")), &b.qkv_kernel)?,
                qkv_b: upload(&name(&format!("{att}/{{query,key,value}}/bias")), &b.qkv_bias)?,
                out_w: upload(&name(&format!("{att}/out/kernel")), &b.out_kernel)?,
                out_b: upload(&name(&format!("{att}/out/bias")), &b.out_bias)?,
                qk_scales: match (&b.qk_norm, weights.config.attention_qk_norm) {
                    (Some(n), true) => Some(upload(&name(&format!("{att}/{{query,key}}_ln/scale")), &[&n.query[..], &n.key[..]].concat())?),
                    (None, false) => None,
                    (n, _) => return Err(qk_norm_mismatch(format!("block {k}"), n.is_some())),
                },
                ln2: affine(&name(weights.names.mlp_norm()), &b.ln2_scale, &b.ln2_bias)?,
                mlp,
            });
        }
        let c = &weights.config;
        let d = c.hidden_size;
        let mut pos = weights.pos_embedding.clone();
        if pos.len() != c.seq_len() * d {
            let expected = format!("{} values ([{}, {d}])", c.seq_len() * d, c.seq_len());
            return Err(Error::input("VitWeights pos_embedding", expected, format!("{} values", pos.len())));
        }
        match (&weights.cls, c.classifier) {
            // The class token's first value is cls + its position, the one f32 sum vmoe's
            // `inputs + pe` makes there.
            (Some(cls), Pooling::Token) if cls.len() == d && pos.len() >= d => pos.iter_mut().zip(cls).for_each(|(p, c)| *p += c),
            (None, Pooling::Gap | Pooling::Map) => {}
            (cls, _) => {
                let found = cls.as_ref().map_or("none".to_string(), |c| format!("{} values", c.len()));
                return Err(Error::input("VitWeights cls", format!("a class token of {d} values exactly with classifier `token`"), found));
            }
        }
        let map = match (&weights.map_head, c.classifier) {
            (Some(h), Pooling::Map) => {
                let att = "MapHead/MultiHeadDotProductAttention";
                // q = probe · W_q + b_q, in f64, once.
                let q: Vec<f32> = (0..d)
                    .map(|j| {
                        (h.qkv_bias[j] as f64 + (0..d).map(|i| h.probe[i] as f64 * h.qkv_kernel[i * 3 * d + j] as f64).sum::<f64>()) as f32
                    })
                    .collect();
                let kv_w: Vec<f32> = h.qkv_kernel.chunks(3 * d).flat_map(|row| row[d..].to_vec()).collect();
                Some(Box::new(MapHead {
                    q: upload("MapHead/probe · query/kernel + query/bias", &q)?,
                    kv_w: upload(&format!("{att}/{{key,value}}/kernel"), &kv_w)?,
                    kv_b: upload(&format!("{att}/{{key,value}}/bias"), &h.qkv_bias[d..])?,
                    out_w: upload(&format!("{att}/out/kernel"), &h.out_kernel)?,
                    out_b: upload(&format!("{att}/out/bias"), &h.out_bias)?,
                    qk_scales: match (&h.qk_norm, c.attention_qk_norm) {
                        (Some(n), true) => Some(upload(&format!("{att}/{{query,key}}_ln/scale"), &[&n.query[..], &n.key[..]].concat())?),
                        (None, false) => None,
                        (n, _) => return Err(qk_norm_mismatch("the MAP head".into(), n.is_some())),
                    },
                    ln: affine("MapHead/LayerNorm", &h.ln_scale, &h.ln_bias)?,
                    w0: upload("MapHead/Mlp/Dense_0/kernel", &h.w0)?,
                    b0: upload("MapHead/Mlp/Dense_0/bias", &h.b0)?,
                    w1: upload("MapHead/Mlp/Dense_1/kernel", &h.w1)?,
                    b1: upload("MapHead/Mlp/Dense_1/bias", &h.b1)?,
                }))
            }
            (None, Pooling::Gap | Pooling::Token) => None,
            (h, _) => {
                let found = if h.is_some() { "a MAP head" } else { "none" };
                return Err(Error::input("VitWeights map_head", "a MAP head exactly with classifier `map`", found));
            }
        };
        let vit = Vit {
            embedding_w: upload("embedding/kernel", &weights.embedding_kernel)?,
            embedding_b: upload("embedding/bias", &weights.embedding_bias)?,
            pos: upload("Encoder/posembed_input/pos_embedding", &pos)?,
            map,
            norm: affine("Encoder/encoder_norm", &weights.norm_scale, &weights.norm_bias)?,
            head_w: upload("head/kernel", &weights.head_kernel)?,
            head_b: upload("head/bias", &weights.head_bias)?,
            blocks,
            config: weights.config.clone(),
            plans: PlanCache::new(MAX_PLANS),
            ctx: ctx.clone(),
        };
        if let Some(e) = scope.pop().await {
            return Err(Error::device("uploading the model", e));
        }
        Ok(vit)
    }

    pub fn config(&self) -> &VitConfig {
        &self.config
    }

    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// Classifies images [b, S, S] (or [b, S, S, C]) with values in [0, 1].
    pub async fn classify(&self, images: &Tensor) -> Result<VitOutput> {
        self.run(images, false).await
    }

    /// The dispatches one forward of `b` images (one chunk) records: what the benchmark reports
    /// beside each model's time.
    #[doc(hidden)]
    pub fn dispatches(&self, b: usize) -> Result<usize> {
        let b = b.min(self.chunk_size(b, false)?).max(1);
        Ok(self.plans.get_or_build((b, false), || self.build_plan(b, false))?.ops.len())
    }

    /// GPU seconds of each dispatch of one forward of `images` (one chunk at most), from timestamp
    /// queries, labelled by kernel; None when the device has none. The benchmark's per-dispatch table.
    #[doc(hidden)]
    pub async fn profile(&self, images: &Tensor) -> Result<Option<Vec<(&'static str, f64)>>> {
        let b = check_images(&self.config, images)?;
        let chunk = self.chunk_size(b, false)?;
        if b > chunk {
            return Err(Error::input("images", format!("at most {chunk} images (profile takes one chunk)"), format!("{b} images")));
        }
        let plan = self.plans.get_or_build((b, false), || self.build_plan(b, false))?;
        self.ctx.queue.write_buffer(&plan.images, 0, bytemuck::cast_slice(&images.data));
        let ops: Vec<&Op> = plan.ops.iter().collect();
        let times = crate::kernels::profile_ops(&self.ctx, &ops).await?;
        Ok(times.map(|t| ops.iter().map(|o| o.label()).zip(t).collect()))
    }

    /// As `classify`, also reading back every Soft MoE block's dispatch and combine weights.
    pub async fn classify_with_maps(&self, images: &Tensor) -> Result<VitOutput> {
        self.run(images, true).await
    }

    async fn run(&self, images: &Tensor, maps: bool) -> Result<VitOutput> {
        let c = &self.config;
        let b = check_images(c, images)?;
        let (m, k, pixels) = (c.seq_len(), c.num_classes, images.data.len() / b.max(1));
        let chunk = self.chunk_size(b, maps)?;
        let mut logits = Vec::with_capacity(b * k);
        let mut map_data: Vec<(usize, Vec<f32>, Vec<f32>)> = Vec::new();
        let mut route_data: Vec<(usize, Vec<f32>, Vec<Option<u32>>)> = Vec::new();
        let n = c.num_experts;
        let mut start = 0;
        while start < b {
            let len = chunk.min(b - start);
            let plan = self.plans.get_or_build((len, maps), || self.build_plan(len, maps))?;
            let map_bytes = (len * m * self.slots() * 4) as u64;
            let mut reads = vec![(&*plan.logits, (len * k * 4) as u64)];
            if maps {
                for (_, d, cm) in &plan.maps {
                    reads.extend([(&***d, map_bytes), (&***cm, map_bytes)]);
                }
                let route_bytes = (len * m * n * 4) as u64;
                for (_, g, s) in &plan.routes {
                    reads.extend([(&***g, route_bytes), (&***s, route_bytes)]);
                }
            }
            let data = &images.data[start * pixels..(start + len) * pixels];
            let out = execute(&self.ctx, &plan.images, data, &plan.ops, &reads, &plan.staging).await?;
            logits.extend_from_slice(&out[..len * k]);
            if maps {
                let per_map = len * m * self.slots();
                map_data.resize_with(plan.maps.len(), Default::default);
                for (i, (block, _, _)) in plan.maps.iter().enumerate() {
                    let at = len * k + 2 * i * per_map;
                    map_data[i].0 = *block;
                    map_data[i].1.extend_from_slice(&out[at..at + per_map]);
                    map_data[i].2.extend_from_slice(&out[at + per_map..at + 2 * per_map]);
                }
                let per_route = len * m * n;
                route_data.resize_with(plan.routes.len(), Default::default);
                for (i, (block, _, _)) in plan.routes.iter().enumerate() {
                    let at = len * k + 2 * plan.maps.len() * per_map + 2 * i * per_route;
                    route_data[i].0 = *block;
                    route_data[i].1.extend_from_slice(&out[at..at + per_route]);
                    route_data[i].2.extend(decode_slots(&out[at + per_route..at + 2 * per_route]));
                }
            }
            start += len;
        }
        let shape = vec![b, m, c.num_experts, c.slots_per_expert];
        let out_maps = map_data
            .into_iter()
            .map(|(block, d, cm)| LayerMaps {
                block,
                dispatch: Tensor { shape: shape.clone(), data: d },
                combine: Tensor { shape: shape.clone(), data: cm },
            })
            .collect();
        let routes = route_data
            .into_iter()
            .map(|(block, g, slots)| LayerRoutes { block, gates: Tensor { shape: vec![b, m, n], data: g }, slots })
            .collect();
        let probs = softmax_rows(&logits, k);
        let predictions = logits.chunks(k).map(argmax).collect();
        Ok(VitOutput {
            logits: Tensor { shape: vec![b, k], data: logits },
            probs: Tensor { shape: vec![b, k], data: probs },
            predictions,
            maps: out_maps,
            routes,
        })
    }

    fn slots(&self) -> usize {
        self.config.num_experts * self.config.slots_per_expert
    }

    fn moe_layers(&self) -> Vec<&SoftMoe> {
        self.blocks
            .iter()
            .filter_map(|b| match &b.mlp {
                Mlp::SoftMoe(l) => Some(l),
                _ => None,
            })
            .collect()
    }

    fn sparse_layers(&self) -> Vec<&SparseMoe> {
        self.blocks
            .iter()
            .filter_map(|b| match &b.mlp {
                Mlp::Sparse(l) => Some(&**l),
                _ => None,
            })
            .collect()
    }

    /// Images per submit: within the memory budget and the binding limits.
    fn chunk_size(&self, b: usize, maps: bool) -> Result<usize> {
        let c = &self.config;
        let (m, d, s) = (c.seq_len() as u64, c.hidden_size as u64, self.slots() as u64);
        let moe = self.moe_layers().len() as u64;
        let h = c.expert_mlp_dim as u64;
        let sizes = [
            (c.image_size * c.image_size * c.channels) as u64,
            m * c.patch_dim() as u64,
            m * d,
            m * d,
            3 * m * d,
            m * d,
            m * c.mlp_dim as u64,
            m * s,
            m * s,
            if moe > 0 { m * d + m * s + 2 * s * d + s * h } else { 0 },
            if maps { 2 * moe * m * s } else { 0 },
        ];
        let sparse = self.sparse_layers();
        let n = c.num_experts as u64;
        let sparse_bytes = sparse.iter().map(|l| SparseScratch::bytes_per_image(l.config(), m as usize)).max().unwrap_or(0)
            + if sparse.is_empty() { 0 } else { 8 * m * n * if maps { sparse.len() as u64 } else { 1 } };
        let per_example = 4 * sizes.iter().sum::<u64>() + sparse_bytes;
        let group = c.group_size.max(1) as u64;
        let largest = (4 * sizes.iter().copied().max().unwrap_or(1).max(s * h)).max(sparse_bytes * group);
        let chunk = chunk_size(&self.ctx, b, per_example, largest, "an image")?;
        // Sparse routers' groups must not be cut by a chunk boundary.
        Ok(if sparse.is_empty() { chunk } else { whole_groups(chunk, b, c.group_size) })
    }

    fn build_plan(&self, b: usize, maps: bool) -> Result<Plan> {
        let ctx = &self.ctx;
        let c = &self.config;
        let (patches_per_image, m, d, heads, hd) = (c.tokens(), c.seq_len(), c.hidden_size, c.num_heads, c.head_dim());
        let rows = b * m;
        let s = self.slots();
        let buf = |len: usize, label: &str| ctx.pool.acquire(&ctx.device, (len.max(1) * 4) as u64, STORAGE, label);
        let images = buf(b * c.image_size * c.image_size * c.channels, "images");
        let patches = buf(b * patches_per_image * c.patch_dim(), "patches");
        let x = buf(rows * d, "residual stream");
        let h = buf(rows * d, "normalised");
        let qkv = buf(rows * 3 * d, "qkv");
        let att = buf(rows * d, "attention");
        let hidden = buf(rows * c.mlp_dim, "mlp hidden");
        let pooled = buf(b * d, "pooled");
        let logits = buf(b * c.num_classes, "logits");
        let moe_layers = self.moe_layers();
        let scratch = (!moe_layers.is_empty()).then(|| Scratch::new(ctx, &moe_layers.iter().map(|l| l.config()).collect::<Vec<_>>(), b, m));
        let shared_maps = (Arc::new(buf(rows * s, "dispatch")), Arc::new(buf(rows * s, "combine")));
        let sparse_layers = self.sparse_layers();
        let sparse_scratch = (!sparse_layers.is_empty())
            .then(|| SparseScratch::new(ctx, &sparse_layers.iter().map(|l| l.config()).collect::<Vec<_>>(), b, m));
        let n = c.num_experts;
        let shared_routes = (Arc::new(buf(rows * n, "gates")), Arc::new(buf(rows * n, "slots")));
        let mut route_bufs = Vec::new();

        let gelu = Activation::Gelu(c.gelu);
        // The patch embedding writes each image's patch tokens; with a class token they start at
        // row 1 of the image's m rows, and the position kernel sets row 0.
        let embed = dense(b * patches_per_image, c.patch_dim(), d, Activation::None, false);
        let (embed, cls_values) = match c.classifier {
            Pooling::Token => (Matmul { c: MatrixView::grouped(patches_per_image, m * d, d, 0).at(d), ..embed }, d),
            Pooling::Gap | Pooling::Map => (embed, 0),
        };
        let mut ops = vec![
            patchify::op(ctx, &images, &patches, b, c)?,
            embed.op(ctx, &patches, &self.embedding_w, Some(&self.embedding_b), &x)?,
            add_position::op(ctx, &self.pos, &x, rows * d, m * d, cls_values)?,
        ];
        let mut map_bufs = Vec::new();
        for (k, blk) in self.blocks.iter().enumerate() {
            ops.push(layer_norm::op(ctx, &x, &blk.ln0, &h, rows, d, c.layer_norm_eps)?);
            ops.push(dense(rows, d, 3 * d, Activation::None, false).op(ctx, &h, &blk.qkv_w, Some(&blk.qkv_b), &qkv)?);
            let qk_norm = blk.qk_scales.as_ref().map(|scales| attention::QkNorm { scales, eps: c.layer_norm_eps });
            ops.push(attention::op(ctx, &qkv, &att, b, m, heads, hd, qk_norm)?);
            ops.push(dense(rows, d, d, Activation::None, true).op(ctx, &att, &blk.out_w, Some(&blk.out_b), &x)?);
            ops.push(layer_norm::op(ctx, &x, &blk.ln2, &h, rows, d, c.layer_norm_eps)?);
            match &blk.mlp {
                Mlp::Dense { w0, b0, w1, b1 } => {
                    ops.push(dense(rows, d, c.mlp_dim, gelu, false).op(ctx, &h, w0, Some(b0), &hidden)?);
                    ops.push(dense(rows, c.mlp_dim, d, Activation::None, true).op(ctx, &hidden, w1, Some(b1), &x)?);
                }
                Mlp::SoftMoe(layer) => {
                    let (dm, cm) =
                        if maps { (Arc::new(buf(rows * s, "dispatch")), Arc::new(buf(rows * s, "combine"))) } else { shared_maps.clone() };
                    let scratch = scratch
                        .as_ref()
                        .ok_or_else(|| Error::Internal("Soft MoE scratch missing in a plan with Soft MoE blocks".into()))?;
                    ops.extend(layer.encode(&h, &x, &dm, &cm, scratch, b, m, true)?);
                    map_bufs.push((k, dm, cm));
                }
                Mlp::Sparse(layer) => {
                    let (g, sl) =
                        if maps { (Arc::new(buf(rows * n, "gates")), Arc::new(buf(rows * n, "slots"))) } else { shared_routes.clone() };
                    let scratch = sparse_scratch
                        .as_ref()
                        .ok_or_else(|| Error::Internal("sparse scratch missing in a plan with sparse blocks".into()))?;
                    ops.extend(layer.encode(&h, &x, &g, &sl, scratch, b, m, true)?);
                    route_bufs.push((k, g, sl));
                }
            }
        }
        ops.push(layer_norm::op(ctx, &x, &self.norm, &h, rows, d, c.layer_norm_eps)?);
        let head = dense(b, d, c.num_classes, Activation::None, false);
        match (c.classifier, &self.map) {
            (Pooling::Gap, _) => {
                ops.push(mean_pool::op(ctx, &h, &pooled, b, m, d)?);
                ops.push(head.op(ctx, &pooled, &self.head_w, Some(&self.head_b), &logits)?);
            }
            // The head reads each image's token 0 straight from the normalised stream.
            (Pooling::Token, _) => {
                let head = Matmul { a: MatrixView { row_stride: m * d, ..MatrixView::row_major(b, d) }, ..head };
                ops.push(head.op(ctx, &h, &self.head_w, Some(&self.head_b), &logits)?);
            }
            // MapHead: keys and values of every token (into the qkv buffer), the probe's attention
            // over them (into `att`), its output projection (`pooled`), then pooled += Mlp(LN(pooled)).
            (Pooling::Map, Some(mh)) => {
                ops.push(dense(rows, d, 2 * d, Activation::None, false).op(ctx, &h, &mh.kv_w, Some(&mh.kv_b), &qkv)?);
                let qk_norm = mh.qk_scales.as_ref().map(|scales| attention::QkNorm { scales, eps: c.layer_norm_eps });
                ops.push(attention::pool_op(ctx, &mh.q, &qkv, &att, b, m, heads, hd, qk_norm)?);
                ops.push(dense(b, d, d, Activation::None, false).op(ctx, &att, &mh.out_w, Some(&mh.out_b), &pooled)?);
                ops.push(layer_norm::op(ctx, &pooled, &mh.ln, &h, b, d, c.layer_norm_eps)?);
                ops.push(dense(b, d, c.mlp_dim, gelu, false).op(ctx, &h, &mh.w0, Some(&mh.b0), &hidden)?);
                ops.push(dense(b, c.mlp_dim, d, Activation::None, true).op(ctx, &hidden, &mh.w1, Some(&mh.b1), &pooled)?);
                ops.push(head.op(ctx, &pooled, &self.head_w, Some(&self.head_b), &logits)?);
            }
            (Pooling::Map, None) => return Err(Error::Internal("a `map` model without its MAP head on the device".into())),
        }

        let out_len = b * c.num_classes + if maps { 2 * map_bufs.len() * rows * s + 2 * route_bufs.len() * rows * n } else { 0 };
        let staging = ctx.pool.acquire(&ctx.device, (out_len * 4) as u64, READBACK, "readback");
        Ok(Plan {
            images,
            logits,
            maps: map_bufs,
            routes: route_bufs,
            staging,
            ops,
            _activations: vec![patches, x, h, qkv, att, hidden, pooled],
            _scratch: scratch,
            _sparse_scratch: sparse_scratch,
        })
    }
}

/// Weights whose attention (`what`) has qk-norm scales (`has`) where the config has no
/// `attention_qk_norm`, or the other way round.
fn qk_norm_mismatch(what: String, has: bool) -> Error {
    let (expected, found) = if has {
        ("none (the config has no `attention_qk_norm`)", "query_ln/key_ln scales")
    } else {
        ("query_ln/key_ln scales (the config sets `attention_qk_norm`)", "none")
    };
    Error::input(format!("VitWeights {what}"), expected, found)
}

/// Index of the largest value (the first on ties).
pub fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().fold(0, |best, (i, &x)| if x > v[best] { i } else { best })
}
