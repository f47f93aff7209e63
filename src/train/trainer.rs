//! `Trainer`: one training step of a ViT on the GPU in one submission — forward (keeping what the
//! backward needs), loss, backward, global-norm clipping and AdamW — on the inference kernels, their
//! backward kernels and the one GEMM engine. Every reduction has a fixed order, so a seed, the data
//! and the batch size fix every bit of the loss trace.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::VitConfig;
use crate::error::{Error, Result};
use crate::gpu::{read_f32, GpuContext, READBACK, STORAGE};
use crate::kernels::adamw::{Adamw, HYPER_LEN};
use crate::kernels::column_sum::ColumnSum;
use crate::kernels::gemm::Matmul;
use crate::kernels::{
    add_position, attention, combine_softmax, cross_entropy, dispatch_softmax, gelu, grad_norm, l2_normalize, layer_norm, mean_pool,
    patchify, router_scale, transpose, Op,
};
use crate::train::views;
use crate::weights::params::ParamLayout;
use crate::weights::VitWeights;

/// How a `Trainer` updates the weights.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainOptions {
    /// Label smoothing ε of the cross-entropy (the trainer's 0.1).
    pub label_smoothing: f32,
    pub adamw: Adamw,
    /// Clip the gradients' global norm to this (0: no clipping, the candle trainer's recipe).
    pub max_grad_norm: f32,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions { label_smoothing: 0.1, adamw: Adamw::default(), max_grad_norm: 0.0 }
    }
}

/// What one step reports.
#[derive(Clone, Debug, PartialEq)]
pub struct StepOutput {
    /// The batch's mean loss (its examples' f32 losses added in order in f64).
    pub loss: f64,
    /// Examples whose largest logit was their label (before the update).
    pub correct: usize,
    /// The gradients' global norm before clipping.
    pub grad_norm: f32,
}

/// A recorded dispatch, or a buffer copy between compute passes.
enum Step {
    Op(Op),
    Copy { src: Arc<wgpu::Buffer>, dst: Arc<wgpu::Buffer>, bytes: u64 },
}

/// One batch size's buffers and recorded steps.
struct Plan {
    images: wgpu::Buffer,
    labels: wgpu::Buffer,
    loss: wgpu::Buffer,
    staging: wgpu::Buffer,
    /// Forward, loss and backward: every gradient written.
    backward: Vec<Step>,
    /// Global norm, clipping factor and AdamW on every tensor.
    update: Vec<Op>,
}

/// A ViT being trained on one device: parameters, gradients and AdamW moments in device buffers,
/// one per tensor of `ParamLayout`.
pub struct Trainer {
    ctx: Arc<GpuContext>,
    config: VitConfig,
    layout: ParamLayout,
    options: TrainOptions,
    params: Vec<Arc<wgpu::Buffer>>,
    /// The transpose of each weight matrix whose input gradient the backward computes, with its
    /// (matrices, rows, cols): rewritten at the start of every step.
    transposed: Vec<Option<(Arc<wgpu::Buffer>, [usize; 3])>>,
    grads: Vec<Arc<wgpu::Buffer>>,
    moments: Vec<wgpu::Buffer>,
    /// The step values AdamW reads (`kernels::adamw::HYPER_LEN`).
    hyper: Arc<wgpu::Buffer>,
    partials: Arc<wgpu::Buffer>,
    plans: HashMap<usize, Plan>,
    /// Steps taken (AdamW's t).
    steps: u64,
}

fn raw_buffer(ctx: &GpuContext, label: &str, len: usize) -> wgpu::Buffer {
    ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: (len.max(1) * 4) as u64,
        usage: STORAGE,
        mapped_at_creation: false,
    })
}

fn buffer(ctx: &GpuContext, label: &str, len: usize) -> Arc<wgpu::Buffer> {
    Arc::new(raw_buffer(ctx, label, len))
}

fn raw_upload(ctx: &GpuContext, label: &str, data: &[f32]) -> wgpu::Buffer {
    let b = raw_buffer(ctx, label, data.len());
    ctx.queue.write_buffer(&b, 0, bytemuck::cast_slice(data));
    b
}

fn check_trainable(c: &VitConfig) -> Result<()> {
    if c.hidden_size / c.num_heads > 256 {
        return Err(Error::config("training", "hidden_size", "at most 256 per head", c.hidden_size));
    }
    Ok(())
}

impl Trainer {
    /// A trainer starting from `weights` (e.g. `init::init_weights`, or a model to fine-tune).
    pub async fn new(ctx: Arc<GpuContext>, weights: &VitWeights, options: TrainOptions) -> Result<Self> {
        Self::with_state(ctx, weights, options, None, 0).await
    }

    /// As `new`, resuming AdamW from `moments` (m then v per tensor, `ParamLayout` order) after `steps` steps.
    pub async fn with_state(
        ctx: Arc<GpuContext>,
        weights: &VitWeights,
        options: TrainOptions,
        moments: Option<&[Vec<f32>]>,
        steps: u64,
    ) -> Result<Self> {
        ctx.check_alive()?;
        let config = weights.config.clone();
        check_trainable(&config)?;
        let layout = ParamLayout::new(&config)?;
        let values = weights.to_params()?;
        if let Some(m) = moments {
            if m.len() != values.len() || m.iter().zip(&values).any(|(m, v)| m.len() != 2 * v.len()) {
                return Err(Error::input("optimizer state", "m and v for every tensor of the model", "another model's"));
            }
        }
        for (s, v) in layout.specs.iter().zip(&values) {
            if 4 * 2 * v.len() as u64 > ctx.max_binding() {
                return Err(Error::Limit {
                    what: format!("the AdamW moments of `{}`", s.name),
                    limit: "max_storage_buffer_binding_size",
                    needed: 8 * v.len() as u64,
                    max: ctx.max_binding(),
                });
            }
        }
        let params = layout.specs.iter().zip(&values).map(|(s, v)| Arc::new(raw_upload(&ctx, &s.name, v))).collect();
        let grads = layout.specs.iter().map(|s| buffer(&ctx, &s.name, s.len)).collect();
        let moments = layout
            .specs
            .iter()
            .enumerate()
            .map(|(i, s)| match moments {
                Some(m) => raw_upload(&ctx, &s.name, &m[i]),
                None => raw_buffer(&ctx, &s.name, 2 * s.len),
            })
            .collect();
        let (d, f, n, h, k) = (config.hidden_size, config.mlp_dim, config.num_experts, config.expert_mlp_dim, config.num_classes);
        let mut transposed: Vec<Option<(Arc<wgpu::Buffer>, [usize; 3])>> = vec![None; layout.specs.len()];
        let mut shapes = vec![(layout.head_kernel, [1, d, k])];
        for bp in &layout.blocks {
            shapes.push((bp.qkv_kernel, [1, d, 3 * d]));
            shapes.push((bp.out_kernel, [1, d, d]));
            if bp.soft_moe {
                shapes.extend([(bp.mlp + 2, [n, d, h]), (bp.mlp + 4, [n, h, d])]);
            } else {
                shapes.extend([(bp.mlp, [1, d, f]), (bp.mlp + 2, [1, f, d])]);
            }
        }
        for (i, shape) in shapes {
            transposed[i] = Some((buffer(&ctx, "transposed weight", layout.specs[i].len), shape));
        }
        let partials = buffer(&ctx, "gradient norm partial sums", layout.specs.iter().map(|s| grad_norm::chunks(s.len)).sum());
        let hyper = buffer(&ctx, "optimizer step values", HYPER_LEN);
        Ok(Trainer { ctx, config, layout, options, params, transposed, grads, moments, hyper, partials, plans: HashMap::new(), steps })
    }

    pub fn config(&self) -> &VitConfig {
        &self.config
    }

    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    fn check_batch(&self, images: &[f32], labels: &[u32]) -> Result<usize> {
        let c = &self.config;
        let per = c.image_size * c.image_size * c.channels;
        if labels.is_empty() {
            return Err(Error::input("labels", "at least one example", "none"));
        }
        if images.len() != labels.len() * per {
            return Err(Error::input("images", format!("{} values ({} images of {per})", labels.len() * per, labels.len()), images.len()));
        }
        if let Some(i) = images.iter().position(|v| !v.is_finite()) {
            return Err(Error::input("images", "finite pixels", format!("a non-finite pixel at flat index {i}")));
        }
        cross_entropy::check_labels(labels, c.num_classes)?;
        Ok(labels.len())
    }

    /// Runs the forward and backward on one batch (no update) and reads back the mean loss and every
    /// gradient, `ParamLayout` order: what the gradient tests compare.
    pub async fn gradients(&mut self, images: &[f32], labels: &[u32]) -> Result<(f64, Vec<Vec<f32>>)> {
        let b = self.check_batch(images, labels)?;
        self.plan(b)?;
        let plan = &self.plans[&b];
        let mut encoder = self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("gradients") });
        self.ctx.queue.write_buffer(&plan.images, 0, bytemuck::cast_slice(images));
        self.ctx.queue.write_buffer(&plan.labels, 0, bytemuck::cast_slice(labels));
        encode(&mut encoder, &plan.backward, &[]);
        let total: usize = self.layout.specs.iter().map(|s| s.len).sum();
        let staging = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("gradients readback"),
            size: ((2 * b + total) * 4) as u64,
            usage: READBACK,
            mapped_at_creation: false,
        });
        encoder.copy_buffer_to_buffer(&plan.loss, 0, &staging, 0, (2 * b * 4) as u64);
        let mut offset = (2 * b * 4) as u64;
        for (g, s) in self.grads.iter().zip(&self.layout.specs) {
            encoder.copy_buffer_to_buffer(g, 0, &staging, offset, (s.len * 4) as u64);
            offset += (s.len * 4) as u64;
        }
        let raw = self.submit(encoder, &staging, 2 * b + total).await?;
        let loss = raw[..2 * b].iter().step_by(2).map(|&v| v as f64).sum::<f64>() / b as f64;
        let mut grads = Vec::new();
        let mut at = 2 * b;
        for s in &self.layout.specs {
            grads.push(raw[at..at + s.len].to_vec());
            at += s.len;
        }
        Ok((loss, grads))
    }

    /// One AdamW step at learning rate `lr` on a batch: images [b, H, W, C] flat in [0, 1], labels [b].
    pub async fn step(&mut self, images: &[f32], labels: &[u32], lr: f64) -> Result<StepOutput> {
        let b = self.check_batch(images, labels)?;
        if !(lr.is_finite() && lr >= 0.0) {
            return Err(Error::input("learning rate", "a finite value ≥ 0", lr));
        }
        self.plan(b)?;
        let plan = &self.plans[&b];
        let t = self.steps + 1;
        let mut hyper = [0.0f32; 4];
        hyper.copy_from_slice(&self.options.adamw.step_values(t, lr));
        self.ctx.queue.write_buffer(&self.hyper, 0, bytemuck::cast_slice(&hyper));
        self.ctx.queue.write_buffer(&plan.images, 0, bytemuck::cast_slice(images));
        self.ctx.queue.write_buffer(&plan.labels, 0, bytemuck::cast_slice(labels));
        let mut encoder = self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("training step") });
        encode(&mut encoder, &plan.backward, &plan.update);
        encoder.copy_buffer_to_buffer(&plan.loss, 0, &plan.staging, 0, (2 * b * 4) as u64);
        encoder.copy_buffer_to_buffer(&self.hyper, 0, &plan.staging, (2 * b * 4) as u64, (HYPER_LEN * 4) as u64);
        let raw = self.submit(encoder, &plan.staging, 2 * b + HYPER_LEN).await?;
        self.steps = t;
        let loss = raw[..2 * b].iter().step_by(2).map(|&v| v as f64).sum::<f64>() / b as f64;
        let correct = (0..b).filter(|&e| raw[2 * e + 1] as u32 == labels[e]).count();
        let grad_norm = raw[2 * b + 5];
        if !loss.is_finite() {
            return Err(Error::NonFinite { context: format!("training step {t}"), name: "loss".into(), index: 0 });
        }
        Ok(StepOutput { loss, correct, grad_norm })
    }

    async fn submit(&self, encoder: wgpu::CommandEncoder, staging: &wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        let scope = self.ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        self.ctx.queue.submit([encoder.finish()]);
        if let Some(e) = scope.pop().await {
            return Err(Error::device("running a training step", e));
        }
        let out = read_f32(&self.ctx, staging, len).await;
        self.ctx.check_alive()?;
        out
    }

    /// The GPU time of every dispatch of a step on batch `images`/`labels`, each in its own timed
    /// pass (None without timestamp queries): where a step's time goes. For benchmarks.
    #[doc(hidden)]
    pub async fn profile(&mut self, images: &[f32], labels: &[u32]) -> Result<Option<Vec<(&'static str, f64)>>> {
        let b = self.check_batch(images, labels)?;
        self.plan(b)?;
        let plan = &self.plans[&b];
        self.ctx.queue.write_buffer(&plan.images, 0, bytemuck::cast_slice(images));
        self.ctx.queue.write_buffer(&plan.labels, 0, bytemuck::cast_slice(labels));
        let ops: Vec<&Op> =
            plan.backward.iter().filter_map(|s| if let Step::Op(op) = s { Some(op) } else { None }).chain(plan.update.iter()).collect();
        let times = crate::kernels::profile_ops(&self.ctx, &ops).await?;
        Ok(times.map(|t| ops.iter().map(|o| o.label()).zip(t).collect()))
    }

    /// The current parameters, `ParamLayout` order.
    pub async fn params(&self) -> Result<Vec<Vec<f32>>> {
        self.read_all(&self.params.iter().map(|b| b.as_ref()).collect::<Vec<_>>(), 1).await
    }

    /// AdamW's moments (m then v per tensor).
    pub async fn moments(&self) -> Result<Vec<Vec<f32>>> {
        self.read_all(&self.moments.iter().collect::<Vec<_>>(), 2).await
    }

    async fn read_all(&self, bufs: &[&wgpu::Buffer], per: usize) -> Result<Vec<Vec<f32>>> {
        let total: usize = self.layout.specs.iter().map(|s| per * s.len).sum();
        let staging = self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size: (total.max(1) * 4) as u64,
            usage: READBACK,
            mapped_at_creation: false,
        });
        let mut encoder = self.ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("readback") });
        let mut offset = 0u64;
        for (b, s) in bufs.iter().zip(&self.layout.specs) {
            encoder.copy_buffer_to_buffer(b, 0, &staging, offset, (per * s.len * 4) as u64);
            offset += (per * s.len * 4) as u64;
        }
        let raw = self.submit(encoder, &staging, total).await?;
        let mut out = Vec::new();
        let mut at = 0;
        for s in &self.layout.specs {
            out.push(raw[at..at + per * s.len].to_vec());
            at += per * s.len;
        }
        Ok(out)
    }

    /// The current weights (what `VitWeights::to_safetensors` writes and `Vit::new` runs).
    pub async fn weights(&self) -> Result<VitWeights> {
        VitWeights::from_params(self.config.clone(), &self.params().await?)
    }

    /// Builds (once per batch size) the buffers and recorded steps of a batch of `b`.
    fn plan(&mut self, b: usize) -> Result<()> {
        if self.plans.contains_key(&b) {
            return Ok(());
        }
        let plan = build_plan(self, b)?;
        self.plans.insert(b, plan);
        Ok(())
    }
}

/// Encodes the steps: consecutive dispatches share a compute pass, a copy ends it.
fn encode(encoder: &mut wgpu::CommandEncoder, steps: &[Step], tail: &[Op]) {
    let mut i = 0;
    while i < steps.len() {
        if let Step::Copy { src, dst, bytes } = &steps[i] {
            encoder.copy_buffer_to_buffer(src, 0, dst, 0, *bytes);
            i += 1;
            continue;
        }
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("training"), timestamp_writes: None });
        while let Some(Step::Op(op)) = steps.get(i) {
            op.encode(&mut pass);
            i += 1;
        }
    }
    if !tail.is_empty() {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("optimizer"), timestamp_writes: None });
        for op in tail {
            op.encode(&mut pass);
        }
    }
}

/// One block's forward buffers.
struct BlockBufs {
    x: Arc<wgpu::Buffer>,
    h0: Arc<wgpu::Buffer>,
    qkv: Arc<wgpu::Buffer>,
    att: Arc<wgpu::Buffer>,
    x_mid: Arc<wgpu::Buffer>,
    h2: Arc<wgpu::Buffer>,
    /// Dense: [rows, f]; Soft MoE: expert-major [n, b·p, h].
    pre: Arc<wgpu::Buffer>,
    act: Arc<wgpu::Buffer>,
    /// Soft MoE only (else 1-value placeholders).
    xn: Arc<wgpu::Buffer>,
    logits: Arc<wgpu::Buffer>,
    dispatch: Arc<wgpu::Buffer>,
    combine: Arc<wgpu::Buffer>,
    x_slots: Arc<wgpu::Buffer>,
    y_slots: Arc<wgpu::Buffer>,
    phi_hat: Arc<wgpu::Buffer>,
    phi_scaled: Arc<wgpu::Buffer>,
}

fn build_plan(t: &Trainer, b: usize) -> Result<Plan> {
    let ctx = &*t.ctx;
    let c = &t.config;
    let l = &t.layout;
    let (m, d, pd, k) = (c.tokens(), c.hidden_size, c.patch_dim(), c.num_classes);
    let (heads, hd) = (c.num_heads, c.head_dim());
    let rows = b * m;
    let (n, p, h) = (c.num_experts, c.slots_per_expert, c.expert_mlp_dim);
    let s = n * p;
    let f = c.mlp_dim;
    let eps = c.layer_norm_eps;
    let gelu_kind = c.gelu;
    let w = |i: usize| t.params[i].clone();
    let wt = |i: usize| {
        t.transposed[i]
            .as_ref()
            .map(|(b, _)| b.clone())
            .ok_or_else(|| Error::Internal(format!("no transpose kept of `{}`", l.specs[i].name)))
    };
    let g = |i: usize| t.grads[i].clone();
    let mm = |desc: Matmul, a: &wgpu::Buffer, bb: &wgpu::Buffer, bias: Option<&wgpu::Buffer>, out: &wgpu::Buffer| -> Result<Step> {
        Ok(Step::Op(desc.op(ctx, a, bb, bias, out)?))
    };
    let copy = |src: &Arc<wgpu::Buffer>, dst: &Arc<wgpu::Buffer>, len: usize| Step::Copy {
        src: src.clone(),
        dst: dst.clone(),
        bytes: (len * 4) as u64,
    };

    let images = raw_buffer(ctx, "images", b * c.image_size * c.image_size * c.channels);
    let labels = raw_buffer(ctx, "labels", b);
    let loss = raw_buffer(ctx, "loss", 2 * b);
    let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("step readback"),
        size: ((2 * b + HYPER_LEN) * 4) as u64,
        usage: READBACK,
        mapped_at_creation: false,
    });
    let patches = buffer(ctx, "patches", rows * pd);
    let tok = |name: &str| buffer(ctx, name, rows * d);
    let blocks: Vec<BlockBufs> = l
        .blocks
        .iter()
        .map(|bp| {
            let moe = |len: usize| buffer(ctx, "moe", if bp.soft_moe { len } else { 1 });
            BlockBufs {
                x: tok("x"),
                h0: tok("h0"),
                qkv: buffer(ctx, "qkv", rows * 3 * d),
                att: tok("attention"),
                x_mid: tok("x mid"),
                h2: tok("h2"),
                pre: buffer(ctx, "pre-activation", if bp.soft_moe { b * s * h } else { rows * f }),
                act: buffer(ctx, "activation", if bp.soft_moe { b * s * h } else { rows * f }),
                xn: moe(rows * d),
                logits: moe(rows * s),
                dispatch: moe(rows * s),
                combine: moe(rows * s),
                x_slots: moe(b * s * d),
                y_slots: moe(b * s * d),
                phi_hat: moe(d * s),
                phi_scaled: moe(d * s),
            }
        })
        .collect();
    let x_last = tok("x last");
    let xf = tok("final norm");
    let pooled = buffer(ctx, "pooled", b * d);
    let logits = buffer(ctx, "logits", b * k);
    // Backward scratch, shared by the blocks.
    let gx = tok("d x");
    let dh = tok("d h");
    let datt = tok("d attention");
    let dqkv = buffer(ctx, "d qkv", rows * 3 * d);
    let ln_stats = buffer(ctx, "layer norm stats", 2 * rows);
    let att_stats = buffer(ctx, "attention stats", b * heads * m * attention::backward::STATS_PER_ROW);
    let has_moe = l.blocks.iter().any(|bp| bp.soft_moe);
    let has_dense = l.blocks.iter().any(|bp| !bp.soft_moe);
    let big = |len: usize, used: bool| buffer(ctx, "backward scratch", if used { len } else { 1 });
    let d_act = big(b * s * h, has_moe);
    let d_act_dense = big(rows * f, has_dense);
    let d_c = big(rows * s, has_moe);
    let d_d = big(rows * s, has_moe);
    let d_l = big(rows * s, has_moe);
    let d_ys = big(b * s * d, has_moe);
    let d_xs = big(b * s * d, has_moe);
    let d_xn = big(rows * d, has_moe);
    let d_phi = big(d * s, has_moe);
    let scale_partials = big(s, has_moe);
    let d_logits = buffer(ctx, "d logits", b * k);
    let d_pooled = buffer(ctx, "d pooled", b * d);
    let dxf = tok("d final norm");

    let mut st: Vec<Step> = Vec::new();
    // The weights' transposes, for the input gradients.
    for (i, kept) in t.transposed.iter().enumerate() {
        if let Some((buf, [batch, r, cols])) = kept {
            st.push(Step::Op(transpose::op(ctx, &t.params[i], buf, *batch, *r, *cols)?));
        }
    }
    // Forward.
    st.push(Step::Op(patchify::op(ctx, &images, &patches, b, c)?));
    let x0 = &blocks.first().map_or(&x_last, |bb| &bb.x).clone();
    st.push(mm(views::linear(rows, pd, d, false), &patches, &w(l.embedding_kernel), Some(&w(l.embedding_bias)), x0)?);
    st.push(Step::Op(add_position::op(ctx, &w(l.pos_embedding), x0, rows * d, m * d, 0)?));
    for (i, (bp, bb)) in l.blocks.iter().zip(&blocks).enumerate() {
        let next = blocks.get(i + 1).map_or(&x_last, |n| &n.x);
        st.push(Step::Op(layer_norm::op(ctx, &bb.x, &w(bp.ln0), &bb.h0, rows, d, eps)?));
        st.push(mm(views::linear(rows, d, 3 * d, false), &bb.h0, &w(bp.qkv_kernel), Some(&w(bp.qkv_bias)), &bb.qkv)?);
        st.push(Step::Op(attention::op(ctx, &bb.qkv, &bb.att, b, m, heads, hd, None)?));
        st.push(copy(&bb.x, &bb.x_mid, rows * d));
        st.push(mm(views::linear(rows, d, d, true), &bb.att, &w(bp.out_kernel), Some(&w(bp.out_bias)), &bb.x_mid)?);
        st.push(Step::Op(layer_norm::op(ctx, &bb.x_mid, &w(bp.ln2), &bb.h2, rows, d, eps)?));
        st.push(copy(&bb.x_mid, next, rows * d));
        if bp.soft_moe {
            st.push(Step::Op(router_scale::op(ctx, &w(bp.mlp), &w(bp.mlp + 1), &bb.phi_hat, &bb.phi_scaled, d, s, c.normalize)?));
            let tokens = if c.normalize {
                st.push(Step::Op(l2_normalize::rows_op(ctx, &bb.h2, &bb.xn, rows, d)?));
                &bb.xn
            } else {
                &bb.h2
            };
            st.push(mm(Matmul::new(rows, s, d), tokens, &bb.phi_scaled, None, &bb.logits)?);
            st.push(Step::Op(dispatch_softmax::op(ctx, &bb.logits, &bb.dispatch, b, m, s)?));
            st.push(Step::Op(combine_softmax::op(ctx, &bb.logits, &bb.combine, rows, s)?));
            st.push(mm(views::slots_from_tokens(b, m, n, p, d), &bb.dispatch, &bb.h2, None, &bb.x_slots)?);
            st.push(mm(views::expert_dense0(b, n, p, d, h), &bb.x_slots, &w(bp.mlp + 2), Some(&w(bp.mlp + 3)), &bb.pre)?);
            st.push(Step::Op(gelu::op(ctx, &bb.pre, &bb.act, b * s * h, gelu_kind)?));
            st.push(mm(views::expert_dense1(b, n, p, d, h), &bb.act, &w(bp.mlp + 4), Some(&w(bp.mlp + 5)), &bb.y_slots)?);
            st.push(mm(views::tokens_from_slots(b, m, s, d, true), &bb.combine, &bb.y_slots, None, next)?);
        } else {
            st.push(mm(views::linear(rows, d, f, false), &bb.h2, &w(bp.mlp), Some(&w(bp.mlp + 1)), &bb.pre)?);
            st.push(Step::Op(gelu::op(ctx, &bb.pre, &bb.act, rows * f, gelu_kind)?));
            st.push(mm(views::linear(rows, f, d, true), &bb.act, &w(bp.mlp + 2), Some(&w(bp.mlp + 3)), next)?);
        }
    }
    st.push(Step::Op(layer_norm::op(ctx, &x_last, &w(l.norm), &xf, rows, d, eps)?));
    st.push(Step::Op(mean_pool::op(ctx, &xf, &pooled, b, m, d)?));
    st.push(mm(views::linear(b, d, k, false), &pooled, &w(l.head_kernel), Some(&w(l.head_bias)), &logits)?);
    // Loss.
    let eps_ls = t.options.label_smoothing;
    st.push(Step::Op(cross_entropy::op(ctx, &logits, &labels, &loss, b, k, eps_ls)?));
    st.push(Step::Op(cross_entropy::backward_op(ctx, &logits, &labels, &d_logits, b, k, eps_ls)?));
    // Backward: head, pooling, final norm.
    st.push(mm(views::weight_grad(b, d, k), &pooled, &d_logits, None, &g(l.head_kernel))?);
    st.push(Step::Op(ColumnSum::rows(b, k).op(ctx, &d_logits, &g(l.head_bias))?));
    st.push(mm(views::input_grad_from_transpose(b, d, k, false), &d_logits, &*wt(l.head_kernel)?, None, &d_pooled)?);
    st.push(Step::Op(mean_pool::backward::backward_op(ctx, &d_pooled, &dxf, b, m, d)?));
    st.push(Step::Op(layer_norm::backward::backward_op(ctx, &x_last, &w(l.norm), &dxf, &gx, &ln_stats, rows, d, eps, false)?));
    st.push(Step::Op(layer_norm::backward::param_grad_op(ctx, &x_last, &ln_stats, &dxf, &g(l.norm), rows, d)?));
    for (bp, bb) in l.blocks.iter().zip(&blocks).rev() {
        // The MLP branch, from gx = d loss / d (block output).
        if bp.soft_moe {
            st.push(mm(views::token_slot_grad(b, m, s, d), &gx, &bb.y_slots, None, &d_c)?);
            st.push(mm(views::slots_from_tokens(b, m, n, p, d), &bb.combine, &gx, None, &d_ys)?);
            st.push(mm(views::expert_weight_grad(n, b * p, h, d), &bb.act, &d_ys, None, &g(bp.mlp + 4))?);
            st.push(Step::Op(ColumnSum::grouped(n, b * p, d).op(ctx, &d_ys, &g(bp.mlp + 5))?));
            st.push(mm(views::expert_dense1_input_grad(b, n, p, d, h), &d_ys, &*wt(bp.mlp + 4)?, None, &d_act)?);
            st.push(Step::Op(gelu::backward_op(ctx, &bb.pre, &d_act, b * s * h, gelu_kind)?));
            st.push(mm(views::expert_weight_grad(n, b * p, d, h), &bb.x_slots, &d_act, None, &g(bp.mlp + 2))?);
            st.push(Step::Op(ColumnSum::grouped(n, b * p, h).op(ctx, &d_act, &g(bp.mlp + 3))?));
            st.push(mm(views::expert_dense0_input_grad(b, n, p, d, h), &d_act, &*wt(bp.mlp + 2)?, None, &d_xs)?);
            st.push(mm(views::token_slot_grad(b, m, s, d), &bb.h2, &d_xs, None, &d_d)?);
            st.push(mm(views::tokens_from_slots(b, m, s, d, false), &bb.dispatch, &d_xs, None, &dh)?);
            st.push(Step::Op(dispatch_softmax::backward::backward_op(ctx, &bb.dispatch, &d_d, &d_l, b, m, s)?));
            st.push(Step::Op(combine_softmax::backward::backward_op(ctx, &bb.combine, &d_c, &d_l, rows, s, true)?));
            let tokens = if c.normalize { &bb.xn } else { &bb.h2 };
            st.push(mm(views::weight_grad(rows, d, s), tokens, &d_l, None, &d_phi)?);
            if c.normalize {
                st.push(mm(views::input_grad(rows, d, s, false), &d_l, &bb.phi_scaled, None, &d_xn)?);
                st.push(Step::Op(l2_normalize::backward::rows_backward_op(ctx, &bb.h2, &d_xn, &dh, rows, d, true)?));
            } else {
                st.push(mm(views::input_grad(rows, d, s, true), &d_l, &bb.phi_scaled, None, &dh)?);
            }
            st.push(Step::Op(router_scale::backward_op(
                ctx,
                &w(bp.mlp),
                &w(bp.mlp + 1),
                &d_phi,
                &g(bp.mlp),
                &scale_partials,
                d,
                s,
                c.normalize,
            )?));
            st.push(Step::Op(ColumnSum::rows(s, 1).op(ctx, &scale_partials, &g(bp.mlp + 1))?));
        } else {
            st.push(mm(views::weight_grad(rows, f, d), &bb.act, &gx, None, &g(bp.mlp + 2))?);
            st.push(Step::Op(ColumnSum::rows(rows, d).op(ctx, &gx, &g(bp.mlp + 3))?));
            st.push(mm(views::input_grad_from_transpose(rows, f, d, false), &gx, &*wt(bp.mlp + 2)?, None, &d_act_dense)?);
            st.push(Step::Op(gelu::backward_op(ctx, &bb.pre, &d_act_dense, rows * f, gelu_kind)?));
            st.push(mm(views::weight_grad(rows, d, f), &bb.h2, &d_act_dense, None, &g(bp.mlp))?);
            st.push(Step::Op(ColumnSum::rows(rows, f).op(ctx, &d_act_dense, &g(bp.mlp + 1))?));
            st.push(mm(views::input_grad_from_transpose(rows, d, f, false), &d_act_dense, &*wt(bp.mlp)?, None, &dh)?);
        }
        st.push(Step::Op(layer_norm::backward::backward_op(ctx, &bb.x_mid, &w(bp.ln2), &dh, &gx, &ln_stats, rows, d, eps, true)?));
        st.push(Step::Op(layer_norm::backward::param_grad_op(ctx, &bb.x_mid, &ln_stats, &dh, &g(bp.ln2), rows, d)?));
        // The attention branch, from gx = d loss / d x_mid.
        st.push(mm(views::weight_grad(rows, d, d), &bb.att, &gx, None, &g(bp.out_kernel))?);
        st.push(Step::Op(ColumnSum::rows(rows, d).op(ctx, &gx, &g(bp.out_bias))?));
        st.push(mm(views::input_grad_from_transpose(rows, d, d, false), &gx, &*wt(bp.out_kernel)?, None, &datt)?);
        let [q, kv] = attention::backward::backward_ops(ctx, &bb.qkv, &bb.att, &datt, &dqkv, &att_stats, b, m, heads, hd)?;
        st.push(Step::Op(q));
        st.push(Step::Op(kv));
        st.push(mm(views::weight_grad(rows, d, 3 * d), &bb.h0, &dqkv, None, &g(bp.qkv_kernel))?);
        st.push(Step::Op(ColumnSum::rows(rows, 3 * d).op(ctx, &dqkv, &g(bp.qkv_bias))?));
        st.push(mm(views::input_grad_from_transpose(rows, d, 3 * d, false), &dqkv, &*wt(bp.qkv_kernel)?, None, &dh)?);
        st.push(Step::Op(layer_norm::backward::backward_op(ctx, &bb.x, &w(bp.ln0), &dh, &gx, &ln_stats, rows, d, eps, true)?));
        st.push(Step::Op(layer_norm::backward::param_grad_op(ctx, &bb.x, &ln_stats, &dh, &g(bp.ln0), rows, d)?));
    }
    // The embeddings.
    st.push(Step::Op(add_position::backward::backward_op(ctx, &gx, &g(l.pos_embedding), b, m * d)?));
    st.push(mm(views::weight_grad(rows, pd, d), &patches, &gx, None, &g(l.embedding_kernel))?);
    st.push(Step::Op(ColumnSum::rows(rows, d).op(ctx, &gx, &g(l.embedding_bias))?));

    // The update: global norm in a fixed order, clipping factor, AdamW.
    let mut update = Vec::new();
    let mut offset = 0;
    for (i, spec) in l.specs.iter().enumerate() {
        update.push(grad_norm::op(ctx, &t.grads[i], &t.partials, spec.len, offset)?);
        offset += grad_norm::chunks(spec.len);
    }
    update.push(grad_norm::finish_op(ctx, &t.partials, &t.hyper, offset, t.options.max_grad_norm)?);
    for (i, spec) in l.specs.iter().enumerate() {
        update.push(t.options.adamw.op(ctx, &t.params[i], &t.grads[i], &t.moments[i], &t.hyper, spec.len, spec.decay)?);
    }
    Ok(Plan { images, labels, loss, staging, backward: st, update })
}
