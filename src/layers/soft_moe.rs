//! `SoftMoe`: the Soft MoE layer on the GPU (SPEC §1).
//!
//! Weights are uploaded once. Each (batch, tokens, maps) shape gets a `Plan`: its buffers (from the
//! pool), uniforms, bind groups and the ordered dispatches, built on first use and cached, so a
//! repeated forward only writes the input, encodes, submits once and reads back what was asked.

use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use crate::error::{Error, Result};
use crate::gpu::{read_f32, GpuContext, PooledBuffer};
use crate::kernels::{
    self, combine, combine_softmax, dispatch_softmax, expert_mlp, l2_normalize, logits,
    slot_inputs, Op,
};
use crate::reference::check_input;
use crate::tensor::Tensor;
use crate::weights::SoftMoeWeights;

/// How many shapes keep a cached plan; older ones return their buffers to the pool.
const MAX_PLANS: usize = 4;
/// Intermediate memory one chunk of the batch may use; larger batches run in several submits.
const CHUNK_BUDGET_BYTES: u64 = 256 << 20;

/// The result of a forward: y [b, m, d], and when asked dispatch and combine [b, m, n, p].
#[derive(Clone, Debug)]
pub struct LayerOutput {
    pub y: Tensor,
    pub dispatch: Option<Tensor>,
    pub combine: Option<Tensor>,
}

/// A Soft MoE layer with its weights resident on one device.
pub struct SoftMoe {
    ctx: Arc<GpuContext>,
    config: SoftMoeWeights,
    mu_hat: wgpu::Buffer,
    experts: Vec<ExpertGroup>,
    plans: Mutex<Vec<(PlanKey, Arc<Plan>)>>,
}

/// A run of experts whose weights fit one storage binding each (the whole layer when they all do).
struct ExpertGroup {
    experts: std::ops::Range<usize>,
    w0: wgpu::Buffer,
    b0: wgpu::Buffer,
    w1: wgpu::Buffer,
    b1: wgpu::Buffer,
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
    staging: PooledBuffer,
    ops: Vec<Op>,
    copies: Vec<(Arc<PooledBuffer>, u64, u64)>,
    _buffers: Vec<Arc<PooledBuffer>>,
}

impl SoftMoe {
    /// Uploads `weights` to the device of `ctx` and normalises Φ there once.
    pub async fn new(ctx: Arc<GpuContext>, weights: &SoftMoeWeights) -> Result<Self> {
        weights.validate()?;
        let w = weights;
        let upload = |name: &str, data: &[f32]| -> Result<wgpu::Buffer> {
            let bytes = std::mem::size_of_val(data) as u64;
            if bytes > ctx.max_binding() {
                return Err(Error::Limit {
                    what: format!("tensor `{name}`"),
                    limit: "max_storage_buffer_binding_size",
                    needed: bytes,
                    max: ctx.max_binding(),
                });
            }
            Ok(ctx
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(name),
                    contents: bytemuck::cast_slice(data),
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                }))
        };
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let mu = upload("Router/mu", &w.mu)?;
        // One expert's kernel must fit a binding; as many experts as fit share one.
        let per_expert = (w.d * w.h * 4) as u64;
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
                w0: upload("Mlp/Dense_0/kernel", &w.w0[r.start * d * h..r.end * d * h])?,
                b0: upload("Mlp/Dense_0/bias", &w.b0[r.start * h..r.end * h])?,
                w1: upload("Mlp/Dense_1/kernel", &w.w1[r.start * h * d..r.end * h * d])?,
                b1: upload("Mlp/Dense_1/bias", &w.b1[r.start * d..r.end * d])?,
                experts: r,
            });
        }
        let mu_hat = if w.normalize {
            let out = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("Router/mu normalised"),
                size: mu.size(),
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            });
            let op = l2_normalize::columns_op(&ctx, &mu, &out, w.d, w.slots())?;
            ctx.queue
                .submit([kernels::encode_ops(&ctx, &[&op]).finish()]);
            out
        } else {
            mu
        };
        if let Some(e) = scope.pop().await {
            return Err(Error::Device(format!("uploading the layer failed: {e}")));
        }
        let config = SoftMoeWeights {
            mu: Vec::new(),
            w0: Vec::new(),
            b0: Vec::new(),
            w1: Vec::new(),
            b1: Vec::new(),
            ..weights.clone()
        };
        Ok(SoftMoe {
            ctx,
            config,
            mu_hat,
            experts,
            plans: Mutex::new(Vec::new()),
        })
    }

    /// The layer's sizes and options (its weight vectors are left empty).
    pub fn config(&self) -> &SoftMoeWeights {
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
        let (b, m) = check_input(&self.config, x)?;
        let (d, s) = (self.config.d, self.config.slots());
        let chunk = self.chunk_size(b, m, maps)?;
        let mut y = Vec::with_capacity(b * m * d);
        let (mut dm, mut cm) = (Vec::new(), Vec::new());
        let mut start = 0;
        while start < b {
            let len = chunk.min(b - start);
            let plan = self.plan(PlanKey {
                batch: len,
                tokens: m,
                maps,
            })?;
            let xs = &x.data[start * m * d..(start + len) * m * d];
            let out = self
                .run_plan(
                    &plan,
                    xs,
                    len * m * d + if maps { 2 * len * m * s } else { 0 },
                )
                .await?;
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
            y: Tensor {
                shape: vec![b, m, d],
                data: y,
            },
            dispatch: maps.then(|| Tensor {
                shape: map_shape.clone(),
                data: dm,
            }),
            combine: maps.then_some(Tensor {
                shape: map_shape,
                data: cm,
            }),
        })
    }

    async fn run_plan(&self, plan: &Plan, x: &[f32], out_len: usize) -> Result<Vec<f32>> {
        let ctx = &self.ctx;
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        ctx.queue.write_buffer(&plan.x, 0, bytemuck::cast_slice(x));
        let ops: Vec<&Op> = plan.ops.iter().collect();
        let mut encoder = kernels::encode_ops(ctx, &ops);
        for (src, dst_offset, bytes) in &plan.copies {
            encoder.copy_buffer_to_buffer(src, 0, &plan.staging, *dst_offset, *bytes);
        }
        ctx.queue.submit([encoder.finish()]);
        if let Some(e) = scope.pop().await {
            return Err(Error::Device(format!("forward failed: {e}")));
        }
        read_f32(ctx, &plan.staging, out_len).await
    }

    /// The largest number of examples per submit that fits the budget and the binding limits.
    fn chunk_size(&self, b: usize, m: usize, maps: bool) -> Result<usize> {
        let c = &self.config;
        let (d, s, h) = (c.d as u64, c.slots() as u64, c.h as u64);
        let m = m as u64;
        let per_example =
            4 * (3 * m * d + 3 * m * s + 2 * s * d + s * h + if maps { 2 * m * s } else { 0 });
        let largest = 4 * [
            m * d,
            m * s,
            s * h,
            s * d,
            m * d + if maps { 2 * m * s } else { 0 },
        ]
        .into_iter()
        .max()
        .unwrap_or(1);
        let max_binding = self.ctx.max_binding();
        if largest > max_binding {
            return Err(Error::Limit {
                what: format!("one example of {m} tokens (its largest intermediate buffer)"),
                limit: "max_storage_buffer_binding_size",
                needed: largest,
                max: max_binding,
            });
        }
        let by_budget = (CHUNK_BUDGET_BYTES / per_example.max(1)).max(1);
        let by_binding = max_binding / largest.max(1);
        Ok((b as u64).min(by_budget).min(by_binding).max(1) as usize)
    }

    fn plan(&self, key: PlanKey) -> Result<Arc<Plan>> {
        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = plans.iter().position(|(k, _)| *k == key) {
            let entry = plans.remove(i);
            let plan = entry.1.clone();
            plans.push(entry);
            return Ok(plan);
        }
        let plan = Arc::new(self.build_plan(key)?);
        if plans.len() >= MAX_PLANS {
            plans.remove(0);
        }
        plans.push((key, plan.clone()));
        Ok(plan)
    }

    fn build_plan(&self, key: PlanKey) -> Result<Plan> {
        let ctx = &self.ctx;
        let c = &self.config;
        let (b, m, d, n, p, h, s) = (key.batch, key.tokens, c.d, c.n, c.p, c.h, c.slots());
        let storage = wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_SRC
            | wgpu::BufferUsages::COPY_DST;
        let buf = |len: usize, label: &str| {
            Arc::new(
                ctx.pool
                    .acquire(&ctx.device, (len * 4) as u64, storage, label),
            )
        };
        let x = ctx
            .pool
            .acquire(&ctx.device, (b * m * d * 4) as u64, storage, "x");
        let xn = if c.normalize {
            Some(buf(b * m * d, "x normalised"))
        } else {
            None
        };
        let l = buf(b * m * s, "logits");
        let dm = buf(b * m * s, "dispatch");
        let cm = buf(b * m * s, "combine");
        let xs = buf(b * s * d, "slot inputs");
        let hid = buf(b * s * h, "expert hidden");
        let ys = buf(b * s * d, "slot outputs");
        let y = buf(b * m * d, "y");
        let out_len = b * m * d + if key.maps { 2 * b * m * s } else { 0 };
        let staging = ctx.pool.acquire(
            &ctx.device,
            (out_len * 4) as u64,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            "readback",
        );

        let mut ops = Vec::with_capacity(8);
        let tokens: &wgpu::Buffer = match &xn {
            Some(xn) => {
                ops.push(l2_normalize::rows_op(ctx, &x, xn, b * m, d)?);
                xn
            }
            None => &x,
        };
        ops.push(logits::logits(b * m, d, s, c.scale).op(ctx, tokens, &self.mu_hat, None, &l)?);
        ops.push(dispatch_softmax::op(ctx, &l, &dm, b, m, s)?);
        ops.push(combine_softmax::op(ctx, &l, &cm, b * m, s)?);
        ops.push(slot_inputs::slot_inputs(b, m, s, d).op(ctx, &dm, &x, None, &xs)?);
        for g in &self.experts {
            let e = g.experts.clone();
            ops.push(expert_mlp::dense0(b, n, p, d, h, e.clone(), c.gelu).op(
                ctx,
                &xs,
                &g.w0,
                Some(&g.b0),
                &hid,
            )?);
            ops.push(expert_mlp::dense1(b, n, p, d, h, e).op(
                ctx,
                &hid,
                &g.w1,
                Some(&g.b1),
                &ys,
            )?);
        }
        ops.push(combine::combine(b, m, s, d).op(ctx, &cm, &ys, None, &y)?);

        let ybytes = (b * m * d * 4) as u64;
        let mbytes = (b * m * s * 4) as u64;
        let mut copies = vec![(y.clone(), 0, ybytes)];
        if key.maps {
            copies.push((dm.clone(), ybytes, mbytes));
            copies.push((cm.clone(), ybytes + mbytes, mbytes));
        }
        let mut buffers = vec![l, dm, cm, xs, hid, ys, y];
        buffers.extend(xn);
        Ok(Plan {
            x,
            staging,
            ops,
            copies,
            _buffers: buffers,
        })
    }
}
