//! `SoftMoe`: the Soft MoE layer on the GPU (SPEC §1).
//!
//! Weights are uploaded once. Each (batch, tokens, maps) shape gets a `Plan`: its buffers (from the
//! pool), uniforms, bind groups and the ordered dispatches, built on first use and cached, so a
//! repeated forward only writes the input, encodes, submits once and reads back what was asked.

use std::sync::Arc;

use crate::config::{SoftMoeConfig, SoftMoeVariant};
use crate::error::{Error, Result};
use crate::gpu::{chunk_size, GpuContext, PlanCache, PooledBuffer, READBACK, STORAGE};
use crate::kernels::execute;
use crate::kernels::gemm::{Matmul, MAX_B_BUFFERS};
use crate::kernels::slot_experts::{self, SlotExpertsShape};
use crate::kernels::{self, combine_softmax, dispatch_softmax, l2_normalize, rms_norm, round_bf16, router_softmax, Op};
use crate::layers::stages;
use crate::reference::check_input;
use crate::tensor::Tensor;
use crate::weights::SoftMoeWeights;

/// How many shapes keep a cached plan; older ones return their buffers to the pool.
const MAX_PLANS: usize = 4;

/// The result of a forward: y [b, m, d], and when asked dispatch and combine [b, m, n, p].
#[derive(Clone, Debug)]
pub struct LayerOutput {
    pub y: Tensor,
    pub dispatch: Option<Tensor>,
    pub combine: Option<Tensor>,
}

/// How a layer keeps its weights on the device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LayerOptions {
    /// Store the expert kernels as f16 (half the memory and bandwidth; needs `shader-f16`, and d and
    /// h multiples of 4). Everything else, and all arithmetic, stays f32.
    pub f16_weights: bool,
}

/// A Soft MoE layer with its weights resident on one device.
pub struct SoftMoe {
    ctx: Arc<GpuContext>,
    config: SoftMoeConfig,
    /// `Router/scale`, the logits' learned scale (a weight, so not part of the config).
    scale: f32,
    options: LayerOptions,
    mu_hat: wgpu::Buffer,
    /// `Norm/scale`, the γ of the tokens' RMSNorm, in the soft-moe-pytorch variant only.
    norm_scale: Option<wgpu::Buffer>,
    experts: Vec<ExpertGroup>,
    /// Every expert's Dense₀ and Dense₁ biases in one buffer each: what the one dispatch per Dense
    /// layer binds when the kernels are split over several bindings (`ExpertDispatch::Split`).
    all_biases: Option<(wgpu::Buffer, wgpu::Buffer)>,
    plans: PlanCache<PlanKey, Plan>,
}

/// A run of experts whose weights fit one storage binding each (the whole layer when they all do).
struct ExpertGroup {
    experts: std::ops::Range<usize>,
    w0: wgpu::Buffer,
    b0: wgpu::Buffer,
    w1: wgpu::Buffer,
    b1: wgpu::Buffer,
}

/// The GEMM descriptions of one forward plan (see `SoftMoe::stage_gemms`).
#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct StageGemms {
    /// The router decision the logits GEMM was described for; `encode` follows the same one.
    pub(crate) router: RouterPlan,
    pub logits: Matmul,
    pub slot_inputs: Matmul,
    /// (Dense₀, Dense₁): one pair over every expert, reading the kernels' groups as split buffers
    /// (`Matmul::b_group`), or one pair per group of experts whose weights share a binding.
    pub experts: Vec<(Matmul, Matmul)>,
    /// Where the layer runs X̃ = DᵀX and both expert Dense layers as one dispatch instead
    /// (`kernels::slot_experts`: small experts, few rows, one weight binding, f32 weights), its shape;
    /// `slot_inputs` and `experts` then describe the GEMMs it replaces, bit for bit.
    pub slot_experts: Option<SlotExpertsShape>,
    pub combine: Matmul,
}

impl StageGemms {
    /// Whether the router runs as one dispatch (`router_softmax::logits_op`) instead of the logits
    /// GEMM and the softmax kernel.
    pub fn router_in_one_dispatch(&self) -> bool {
        self.router.one_dispatch
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct PlanKey {
    batch: usize,
    tokens: usize,
    maps: bool,
}

/// Everything one forward of a given shape needs on the device, created once.
struct Plan {
    x: PooledBuffer,
    y: PooledBuffer,
    dispatch: PooledBuffer,
    combine: PooledBuffer,
    staging: PooledBuffer,
    ops: Vec<Op>,
    _scratch: Scratch,
}

impl SoftMoe {
    /// Uploads `weights` to the device of `ctx` and normalises Φ there once.
    pub async fn new(ctx: Arc<GpuContext>, weights: &SoftMoeWeights) -> Result<Self> {
        Self::with_options(ctx, weights, LayerOptions::default()).await
    }

    /// As `new`, with storage options.
    pub async fn with_options(ctx: Arc<GpuContext>, weights: &SoftMoeWeights, options: LayerOptions) -> Result<Self> {
        weights.validate()?;
        if options.f16_weights {
            if !ctx.features.contains(wgpu::Features::SHADER_F16) {
                return Err(Error::MissingFeature { feature: "shader-f16", needed_for: "f16 weights", adapter: ctx.info.name.clone() });
            }
            if let Some((key, v)) = [("d", weights.d), ("h", weights.h)].into_iter().find(|(_, v)| !v.is_multiple_of(4)) {
                return Err(Error::config("f16 weights", key, "a multiple of 4 (f16 weights need d and h to be multiples of 4)", v));
            }
        }
        let w = weights;
        let upload = |name: &str, data: &[f32]| ctx.upload(name, bytemuck::cast_slice(data));
        // Expert kernels [experts, k, n] in the layout the expert GEMMs read (`expert_kernel_view`),
        // as f32, or as f16 bits when asked.
        let upload_kernel = |name: &str, data: &[f32], k: usize, n: usize| {
            let data = &stages::expert_kernel_layout(data, data.len() / (k * n), k, n);
            if options.f16_weights {
                let halves: Vec<u16> = data.iter().map(|&v| half::f16::from_f32(v).to_bits()).collect();
                ctx.upload(name, bytemuck::cast_slice(&halves))
            } else {
                upload(name, data)
            }
        };
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mu = upload("Router/mu", &w.mu)?;
        // One expert's kernel must fit a binding; as many experts as fit share one.
        let per_expert = (w.d * w.h * if options.f16_weights { 2 } else { 4 }) as u64;
        let group_len = (ctx.max_binding() / per_expert).min(w.n as u64) as usize;
        if group_len == 0 {
            return Err(Error::Limit {
                what: "one expert's Mlp/Dense_0/kernel".into(),
                limit: "max_storage_buffer_binding_size",
                needed: per_expert,
                max: ctx.max_binding(),
            });
        }
        let (d, h) = (w.d, w.h);
        let mut experts = Vec::new();
        for first in (0..w.n).step_by(group_len) {
            let r = first..(first + group_len).min(w.n);
            experts.push(ExpertGroup {
                w0: upload_kernel("Mlp/Dense_0/kernel", &w.w0[r.start * d * h..r.end * d * h], d, h)?,
                b0: upload("Mlp/Dense_0/bias", &w.b0[r.start * h..r.end * h])?,
                w1: upload_kernel("Mlp/Dense_1/kernel", &w.w1[r.start * h * d..r.end * h * d], h, d)?,
                b1: upload("Mlp/Dense_1/bias", &w.b1[r.start * d..r.end * d])?,
                experts: r,
            });
        }
        // Split kernels are read by one dispatch per Dense layer where a vec4 kernel can (d and h
        // multiples of 4) and the groups fit its B bindings; it reads the biases whole. Not on CPU
        // adapters: they run the kernel's switch over B's buffers case by case, masked, so one
        // dispatch per binding (each reading B without the switch) is faster there.
        let one_dispatch = ctx.kernels_for() != wgpu::DeviceType::Cpu;
        let all_biases = if one_dispatch && experts.len() > 1 && experts.len() <= MAX_B_BUFFERS && d % 4 == 0 && h % 4 == 0 {
            Some((upload("Mlp/Dense_0/bias", &w.b0)?, upload("Mlp/Dense_1/bias", &w.b1)?))
        } else {
            None
        };
        let pytorch = w.variant == SoftMoeVariant::SoftMoePytorch;
        let mu_hat = if w.normalize || pytorch {
            let out = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("Router/mu normalised"),
                size: mu.size(),
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            });
            let op = if pytorch {
                // soft-moe-pytorch: Φ' = slot_norm(slot_embeds), each slot RMSNorm-ed with its γ.
                let gamma = upload("SlotNorm/scale", &w.slot_norm_scale)?;
                rms_norm::columns_op(&ctx, &mu, &gamma, &out, w.d, w.slots())?
            } else {
                l2_normalize::columns_op(&ctx, &mu, &out, w.d, w.slots())?
            };
            ctx.queue.submit([kernels::encode_ops(&ctx, &[&op]).finish()]);
            out
        } else {
            mu
        };
        let norm_scale = if pytorch { Some(upload("Norm/scale", &w.norm_scale)?) } else { None };
        if let Some(e) = scope.pop().await {
            return Err(Error::device("uploading the layer", e));
        }
        Ok(SoftMoe {
            ctx,
            config: weights.config(),
            scale: weights.scale,
            options,
            mu_hat,
            norm_scale,
            experts,
            all_biases,
            plans: PlanCache::new(MAX_PLANS),
        })
    }

    /// The layer's hyper-parameters.
    pub fn config(&self) -> &SoftMoeConfig {
        &self.config
    }

    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// y for x [b, m, d].
    pub async fn forward(&self, x: &Tensor) -> Result<LayerOutput> {
        self.run(x, false).await
    }

    /// y, and the dispatch and combine weights, for x [b, m, d].
    pub async fn forward_with_maps(&self, x: &Tensor) -> Result<LayerOutput> {
        self.run(x, true).await
    }

    async fn run(&self, x: &Tensor, maps: bool) -> Result<LayerOutput> {
        let (b, m) = check_input(self.config.d, x)?;
        let (d, s) = (self.config.d, self.config.slots());
        let chunk = self.chunk_size(b, m, maps)?;
        let mut y = Vec::with_capacity(b * m * d);
        let (mut dm, mut cm) = (Vec::new(), Vec::new());
        let mut start = 0;
        while start < b {
            let len = chunk.min(b - start);
            let key = PlanKey { batch: len, tokens: m, maps };
            let plan = self.plans.get_or_build(key, || self.build_plan(key))?;
            let (ybytes, mbytes) = ((len * m * d * 4) as u64, (len * m * s * 4) as u64);
            let mut reads = vec![(&*plan.y, ybytes)];
            if maps {
                reads.extend([(&*plan.dispatch, mbytes), (&*plan.combine, mbytes)]);
            }
            let xs = &x.data[start * m * d..(start + len) * m * d];
            let out = execute(&self.ctx, &plan.x, xs, &plan.ops, &reads, &plan.staging).await?;
            let (ypart, rest) = out.split_at(len * m * d);
            y.extend_from_slice(ypart);
            if maps {
                let (dpart, cpart) = rest.split_at(len * m * s);
                dm.extend_from_slice(dpart);
                cm.extend_from_slice(cpart);
            }
            start += len;
        }
        let map_shape = vec![b, m, self.config.n, self.config.p];
        Ok(LayerOutput {
            y: Tensor { shape: vec![b, m, d], data: y },
            dispatch: maps.then(|| Tensor { shape: map_shape.clone(), data: dm }),
            combine: maps.then_some(Tensor { shape: map_shape, data: cm }),
        })
    }

    /// GPU seconds of each dispatch of a forward of `x` (one chunk at most), from timestamp queries;
    /// None when the device has none.
    pub async fn profile(&self, x: &Tensor) -> Result<Option<Vec<(&'static str, f64)>>> {
        let (b, m) = check_input(self.config.d, x)?;
        let chunk = self.chunk_size(b, m, false)?;
        if b > chunk {
            return Err(Error::input("x", format!("at most {chunk} examples (profile takes one chunk)"), format!("{b} examples")));
        }
        let key = PlanKey { batch: b, tokens: m, maps: false };
        let plan = self.plans.get_or_build(key, || self.build_plan(key))?;
        self.ctx.queue.write_buffer(&plan.x, 0, bytemuck::cast_slice(&x.data));
        let ops: Vec<&Op> = plan.ops.iter().collect();
        let times = crate::kernels::profile_ops(&self.ctx, &ops).await?;
        Ok(times.map(|t| ops.iter().map(|o| o.label()).zip(t).collect()))
    }

    /// The largest number of examples per submit that fits the budget and the binding limits.
    fn chunk_size(&self, b: usize, m: usize, maps: bool) -> Result<usize> {
        let c = &self.config;
        let (d, s, h) = (c.d as u64, c.slots() as u64, c.h as u64);
        let m = m as u64;
        let readback = m * d + if maps { 2 * m * s } else { 0 };
        let per_example = 4 * (3 * m * d + 3 * m * s + 2 * s * d + s * h + readback);
        let largest = 4 * [m * d, m * s, s * h, s * d, readback].into_iter().max().unwrap_or(1);
        chunk_size(&self.ctx, b, per_example, largest, &format!("{m} tokens"))
    }

    fn build_plan(&self, key: PlanKey) -> Result<Plan> {
        let ctx = &self.ctx;
        let c = &self.config;
        let (b, m, d, s) = (key.batch, key.tokens, c.d, c.slots());
        let buf = |len: usize, label: &str| ctx.pool.acquire(&ctx.device, (len * 4) as u64, STORAGE, label);
        let x = buf(b * m * d, "x");
        let y = buf(b * m * d, "y");
        let dispatch = buf(b * m * s, "dispatch");
        let combine = buf(b * m * s, "combine");
        let scratch = Scratch::new(ctx, &[c], b, m);
        let ops = self.encode(&x, &y, &dispatch, &combine, &scratch, b, m, false)?;
        let out_len = b * m * d + if key.maps { 2 * b * m * s } else { 0 };
        let staging = ctx.pool.acquire(&ctx.device, (out_len * 4) as u64, READBACK, "readback");
        Ok(Plan { x, y, dispatch, combine, staging, ops, _scratch: scratch })
    }

    /// The GEMMs a forward of `b` examples of `m` tokens runs, as `encode` binds them: the logits
    /// (with the token normalisation fused where `RouterPlan` says so), X̃ = DᵀX, both expert Dense
    /// layers per group of experts that share a binding, and Y = CỸ. The benchmark times exactly these.
    #[doc(hidden)]
    pub fn stage_gemms(&self, b: usize, m: usize, residual: bool) -> StageGemms {
        let c = &self.config;
        let (d, n, p, h, s) = (c.d, c.n, c.p, c.h, c.slots());
        let router = RouterPlan::of(c, b, m);
        let fused_norm = c.normalize && !router.separate_normalisation;
        // The expert kernels' storage is part of their GEMMs' description, which picks the kernel.
        let b_f16 = self.options.f16_weights;
        let fused = SlotExpertsShape { batch: b, tokens: m, d, n, p, h, gelu: c.gelu };
        StageGemms {
            slot_experts: (self.experts.len() == 1 && !b_f16 && fused.fits()).then_some(fused),
            router,
            logits: Matmul { normalize_rows: fused_norm, ..stages::logits(b * m, d, s, self.scale) },
            slot_inputs: stages::slot_inputs(b, m, s, d),
            experts: match (&self.all_biases, self.experts.first()) {
                // One dispatch per Dense layer reading every group's kernels (B split over buffers).
                (Some(_), Some(first)) => {
                    let b_group = Some(first.experts.len());
                    vec![(
                        Matmul { b_f16, b_group, ..stages::dense0(b, n, p, d, h, 0..n, c.gelu) },
                        Matmul { b_f16, b_group, ..stages::dense1(b, n, p, d, h, 0..n) },
                    )]
                }
                _ => self
                    .experts
                    .iter()
                    .map(|g| {
                        let e = g.experts.clone();
                        (
                            Matmul { b_f16, ..stages::dense0(b, n, p, d, h, e.clone(), c.gelu) },
                            Matmul { b_f16, ..stages::dense1(b, n, p, d, h, e) },
                        )
                    })
                    .collect(),
            },
            combine: stages::combine(b, m, s, d, residual),
        }
    }

    /// The layer's dispatches from `x` [b, m, d] to `y` (or `y +=` with `residual`), writing the
    /// dispatch and combine weights to `dm` and `cm`; a model encodes these inside its own pass.
    /// With `dispatch_bfloat16`, `x` is rounded to bfloat16 in place once the router has read it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn encode(
        &self,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        dm: &wgpu::Buffer,
        cm: &wgpu::Buffer,
        scratch: &Scratch,
        b: usize,
        m: usize,
        residual: bool,
    ) -> Result<Vec<Op>> {
        let ctx = &self.ctx;
        let c = &self.config;
        let (d, s) = (c.d, c.slots());
        let mut ops = Vec::with_capacity(8);
        // The router: token normalisation fused into the logits GEMM where the vec4 kernel runs it
        // (n·p a multiple of 4), both softmaxes in one kernel where the slots fit it.
        let g = self.stage_gemms(b, m, residual);
        // soft-moe-pytorch replaces the tokens by X' = RMSNorm(X) before everything: the logits
        // and the slot inputs read X' (in scratch X̂); vmoe's X̃ = DᵀX reads the layer's input.
        let dispatched: &wgpu::Buffer = match &self.norm_scale {
            Some(gamma) => {
                ops.push(rms_norm::rows_op(ctx, x, gamma, &scratch.xn, b * m, d)?);
                ops.push(g.logits.op(ctx, &scratch.xn, &self.mu_hat, None, &scratch.logits)?);
                &scratch.xn
            }
            None if g.router.separate_normalisation => {
                ops.push(l2_normalize::rows_op(ctx, x, &scratch.xn, b * m, d)?);
                ops.push(g.logits.op(ctx, &scratch.xn, &self.mu_hat, None, &scratch.logits)?);
                x
            }
            None if g.router.one_dispatch => {
                let (shape, parts) = ((b, m, s, d), router_copies(ctx, c, b, m));
                ops.push(router_softmax::logits_op(ctx, x, &self.mu_hat, &scratch.logits, dm, cm, shape, parts, c.normalize, self.scale)?);
                x
            }
            None => {
                ops.push(g.logits.op(ctx, x, &self.mu_hat, None, &scratch.logits)?);
                x
            }
        };
        // The one-dispatch router computed both softmaxes with the logits.
        if g.router.fused_softmax && !g.router.one_dispatch {
            ops.push(router_softmax::op(ctx, &scratch.logits, dm, cm, b, m, s)?);
        } else if !g.router.fused_softmax {
            ops.push(dispatch_softmax::op(ctx, &scratch.logits, dm, b, m, s)?);
            ops.push(combine_softmax::op(ctx, &scratch.logits, cm, b * m, s)?);
        }
        // vmoe's Bfloat16Dispatcher: the router saw the f32 tokens; X̃ = DᵀX takes them rounded.
        if c.dispatch_bfloat16 {
            ops.push(round_bf16::op(ctx, x, b * m * d)?);
        }
        if let (Some(shape), [group]) = (g.slot_experts, self.experts.as_slice()) {
            // Small experts at small batch: the three GEMMs as one dispatch, the same bits.
            ops.push(slot_experts::op(ctx, shape, dm, dispatched, &group.w0, &group.b0, &group.w1, &group.b1, &scratch.slots_out)?);
        } else {
            self.encode_expert_gemms(ctx, &g, dm, dispatched, scratch, &mut ops)?;
        }
        // …and Y = CỸ the experts' outputs rounded.
        if c.dispatch_bfloat16 {
            ops.push(round_bf16::op(ctx, &scratch.slots_out, b * s * d)?);
        }
        ops.push(g.combine.op(ctx, cm, &scratch.slots_out, None, y)?);
        Ok(ops)
    }

    /// X̃ = DᵀX and the expert Dense layers as GEMMs: one pair of dispatches over all experts, or one
    /// pair per group of experts that share a binding.
    fn encode_expert_gemms(
        &self,
        ctx: &GpuContext,
        g: &StageGemms,
        dm: &wgpu::Buffer,
        dispatched: &wgpu::Buffer,
        scratch: &Scratch,
        ops: &mut Vec<Op>,
    ) -> Result<()> {
        ops.push(g.slot_inputs.op(ctx, dm, dispatched, None, &scratch.slots_in)?);
        if let (Some((b0, b1)), [(mm0, mm1)]) = (&self.all_biases, g.experts.as_slice()) {
            let w0: Vec<&wgpu::Buffer> = self.experts.iter().map(|e| &e.w0).collect();
            let w1: Vec<&wgpu::Buffer> = self.experts.iter().map(|e| &e.w1).collect();
            ops.push(mm0.op_split(ctx, &scratch.slots_in, &w0, Some(b0), &scratch.hidden)?);
            ops.push(mm1.op_split(ctx, &scratch.hidden, &w1, Some(b1), &scratch.slots_out)?);
        } else {
            for (group, (mm0, mm1)) in self.experts.iter().zip(&g.experts) {
                ops.push(mm0.op(ctx, &scratch.slots_in, &group.w0, Some(&group.b0), &scratch.hidden)?);
                ops.push(mm1.op(ctx, &scratch.hidden, &group.w1, Some(&group.b1), &scratch.slots_out)?);
            }
        }
        Ok(())
    }
}

/// How a layer's router runs at a given number of rows, decided once here for both the scratch
/// sizing and the encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RouterPlan {
    /// Tokens are normalised by their own kernel (into scratch X̂): always in the soft-moe-pytorch
    /// variant (its RMSNorm, whose output the experts read too), and in vmoe's when the logits GEMM
    /// cannot do it: only the vec4 kernel fuses the normalisation, and it needs n·p a multiple of 4.
    pub separate_normalisation: bool,
    /// Both softmaxes in one kernel (the slots fit it), else the two separate kernels.
    pub fused_softmax: bool,
    /// The logits and both softmaxes in one dispatch (`router_softmax::logits_op`): small layers at
    /// small batch, where the normalisation is fused; the logits GEMM describes what it computes.
    pub one_dispatch: bool,
}

impl RouterPlan {
    pub(crate) fn of(c: &SoftMoeConfig, batch: usize, tokens: usize) -> Self {
        let vec4_logits = stages::logits(batch * tokens, c.d, c.slots(), 1.0).vec4_b();
        let pytorch = c.variant == SoftMoeVariant::SoftMoePytorch;
        let separate_normalisation = pytorch || (c.normalize && !vec4_logits);
        let fused_softmax = router_softmax::fits(c.slots());
        let one_dispatch = !separate_normalisation && fused_softmax && router_softmax::logits_fit(batch, tokens, c.slots(), c.d);
        RouterPlan { separate_normalisation, fused_softmax, one_dispatch }
    }
}

/// Copies of the logits a forward of `b` examples of `m` tokens keeps: one per workgroup of an example
/// where the router runs as one dispatch (`router_softmax::logits_parts`, as many as fit a binding),
/// else one.
fn router_copies(ctx: &GpuContext, c: &SoftMoeConfig, b: usize, m: usize) -> usize {
    if !RouterPlan::of(c, b, m).one_dispatch {
        return 1;
    }
    let fit = ctx.max_binding() / (4 * b * m * c.slots()).max(1) as u64;
    router_softmax::logits_parts(b, m, ctx.kernels_for()).min(fit as usize).max(1)
}

/// Intermediate buffers of Soft MoE layers, sized for the largest of `layers` at (b, m); layers that
/// run one after another in a pass share one.
pub(crate) struct Scratch {
    xn: PooledBuffer,
    logits: PooledBuffer,
    slots_in: PooledBuffer,
    hidden: PooledBuffer,
    slots_out: PooledBuffer,
}

impl Scratch {
    pub(crate) fn new(ctx: &GpuContext, layers: &[&SoftMoeConfig], b: usize, m: usize) -> Self {
        let max = |f: &dyn Fn(&SoftMoeConfig) -> usize| layers.iter().map(|w| f(w)).max().unwrap_or(1).max(1);
        let buf = |len: usize, label: &str| ctx.pool.acquire(&ctx.device, (len * 4) as u64, STORAGE, label);
        Scratch {
            // Only layers whose router normalises the tokens separately need X̂.
            xn: buf(max(&|w| if RouterPlan::of(w, b, m).separate_normalisation { b * m * w.d } else { 1 }), "x normalised"),
            // The one-dispatch router keeps a copy of the logits per workgroup of an example.
            logits: buf(max(&|w| router_copies(ctx, w, b, m) * b * m * w.slots()), "logits"),
            slots_in: buf(max(&|w| b * w.slots() * w.d), "slot inputs"),
            hidden: buf(max(&|w| b * w.slots() * w.h), "expert hidden"),
            slots_out: buf(max(&|w| b * w.slots() * w.d), "slot outputs"),
        }
    }
}
