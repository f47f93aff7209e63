//! `SparseMoe`: a Tokens Choice or Experts Choice MoE layer on the GPU, the baselines Soft MoE is
//! compared with.
//!
//! Router logits (GEMM) → gates (row softmax) → routing (`sparse_route.wgsl`, the rules of
//! `crate::routing`) → expert inputs (`sparse_gather.wgsl`) → the same batched expert GEMMs as Soft
//! MoE, with each group's capacity as its "slots per expert" → gate-weighted sum
//! (`sparse_combine.wgsl`). Tokens of a group compete for capacity, so unlike Soft MoE an image's
//! output depends on the other images of its group.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::gpu::{chunk_size, GpuContext, PlanCache, PooledBuffer};
use crate::gpu::{READBACK, STORAGE};
use crate::kernels::execute;
use crate::kernels::gemm::Activation;
use crate::kernels::sparse_route::RouteShape;
use crate::kernels::{combine_softmax, round_bf16, sparse_combine, sparse_gather, sparse_route, Op};
use crate::layers::stages::{self, dense};
use crate::routing::RouteStats;
use crate::tensor::Tensor;
use crate::weights::SparseMoeWeights;

const MAX_PLANS: usize = 4;

/// y [b, m, d], the gates [b, m, n], and each (token, expert)'s slot (None: not processed).
#[derive(Clone, Debug)]
pub struct SparseOutput {
    pub y: Tensor,
    pub gates: Tensor,
    pub slots: Vec<Option<u32>>,
}

impl SparseOutput {
    /// Dropped tokens and per-expert load.
    pub fn stats(&self) -> RouteStats {
        let n = self.gates.shape.last().copied().unwrap_or(1);
        let slots: Vec<Option<usize>> = self.slots.iter().map(|s| s.map(|v| v as usize)).collect();
        RouteStats::of(&slots, n)
    }
}

/// Decodes the kernel's u32 slots (read back as f32 bits): u32::MAX means none.
pub fn decode_slots(bits: &[f32]) -> Vec<Option<u32>> {
    bits.iter().map(|v| Some(v.to_bits()).filter(|&s| s != u32::MAX)).collect()
}

/// A sparse MoE layer with its weights resident on one device.
pub struct SparseMoe {
    ctx: Arc<GpuContext>,
    config: SparseMoeWeights,
    wr: wgpu::Buffer,
    w0: wgpu::Buffer,
    b0: wgpu::Buffer,
    w1: wgpu::Buffer,
    b1: wgpu::Buffer,
    plans: PlanCache<(usize, usize), Plan>,
}

struct Plan {
    x: PooledBuffer,
    y: PooledBuffer,
    gates: PooledBuffer,
    slots: PooledBuffer,
    staging: PooledBuffer,
    ops: Vec<Op>,
    _scratch: SparseScratch,
}

/// Intermediate buffers of sparse layers at (b, m), shared by the layers of one pass.
pub(crate) struct SparseScratch {
    logits: PooledBuffer,
    slots_in: PooledBuffer,
    hidden: PooledBuffer,
    slots_out: PooledBuffer,
}

impl SparseScratch {
    pub(crate) fn new(ctx: &GpuContext, layers: &[&SparseMoeWeights], b: usize, m: usize) -> Self {
        let max = |f: &dyn Fn(&SparseMoeWeights) -> usize| layers.iter().map(|w| f(w)).max().unwrap_or(1).max(1);
        let buf = |len: usize, label: &str| ctx.pool.acquire(&ctx.device, (len * 4) as u64, STORAGE, label);
        let slots = |w: &SparseMoeWeights| {
            let s = RouteShape::new(&w.router, b, m, w.n, w.group_size);
            s.groups * s.n * s.cap_full
        };
        SparseScratch {
            logits: buf(max(&|w| b * m * w.n), "router logits"),
            slots_in: buf(max(&|w| slots(w) * w.d), "expert inputs"),
            hidden: buf(max(&|w| slots(w) * w.h), "expert hidden"),
            slots_out: buf(max(&|w| slots(w) * w.d), "expert outputs"),
        }
    }

    /// Bytes per image of these buffers (for chunking).
    pub(crate) fn bytes_per_image(w: &SparseMoeWeights, m: usize) -> u64 {
        let s = RouteShape::new(&w.router, w.group_size, m, w.n, w.group_size);
        let slots = (s.n * s.cap_full).div_ceil(w.group_size) as u64;
        4 * ((m * w.n) as u64 + slots * (2 * w.d + w.h) as u64)
    }
}

impl SparseMoe {
    /// Uploads `weights` to the device of `ctx`.
    pub async fn new(ctx: Arc<GpuContext>, weights: &SparseMoeWeights) -> Result<Self> {
        weights.validate()?;
        let w = weights;
        let kernel_bytes = (w.n * w.d * w.h * 4) as u64;
        if kernel_bytes > ctx.max_binding() {
            return Err(Error::Limit {
                what: "a sparse layer's Mlp/Dense_0/kernel".into(),
                limit: "max_storage_buffer_binding_size",
                needed: kernel_bytes,
                max: ctx.max_binding(),
            });
        }
        let upload = |name: &str, data: &[f32]| ctx.upload(name, bytemuck::cast_slice(data));
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let layer = SparseMoe {
            wr: upload("Router/dense/kernel", &w.wr)?,
            // The expert kernels in the layout the expert GEMMs read (`stages::expert_kernel_view`).
            w0: upload("Mlp/Dense_0/kernel", &stages::expert_kernel_layout(&w.w0, w.n, w.d, w.h))?,
            b0: upload("Mlp/Dense_0/bias", &w.b0)?,
            w1: upload("Mlp/Dense_1/kernel", &stages::expert_kernel_layout(&w.w1, w.n, w.h, w.d))?,
            b1: upload("Mlp/Dense_1/bias", &w.b1)?,
            config: SparseMoeWeights { wr: Vec::new(), w0: Vec::new(), b0: Vec::new(), w1: Vec::new(), b1: Vec::new(), ..weights.clone() },
            plans: PlanCache::new(MAX_PLANS),
            ctx: ctx.clone(),
        };
        if let Some(e) = scope.pop().await {
            return Err(Error::device("uploading the layer", e));
        }
        Ok(layer)
    }

    /// The layer's sizes and router (its weight vectors are left empty).
    pub fn config(&self) -> &SparseMoeWeights {
        &self.config
    }

    /// y, gates and routing for x [b, m, d]; groups of `group_size` images route together.
    pub async fn forward(&self, x: &Tensor) -> Result<SparseOutput> {
        let c = &self.config;
        let [b, m, d] = x.shape[..] else {
            return Err(Error::input("x", format!("shape [batch, tokens, {}]", c.d), format!("shape {:?}", x.shape)));
        };
        if d != c.d || m == 0 || b == 0 {
            return Err(Error::input("x", format!("shape [batch ≥ 1, tokens ≥ 1, {}]", c.d), format!("shape {:?}", x.shape)));
        }
        if x.data.len() != b * m * d {
            return Err(Error::input("x", format!("{} values (shape {:?})", b * m * d, x.shape), format!("{} values", x.data.len())));
        }
        if let Some(i) = x.data.iter().position(|v| !v.is_finite()) {
            return Err(Error::input("x", "finite values", format!("a non-finite value at flat index {i}")));
        }
        let chunk = self.chunk_size(b, m)?;
        let (mut y, mut gates, mut slots) = (Vec::new(), Vec::new(), Vec::new());
        let mut start = 0;
        while start < b {
            let len = chunk.min(b - start);
            let plan = self.plans.get_or_build((len, m), || self.build_plan(len, m))?;
            let (rows, n) = (len * m, c.n);
            let reads = [(&*plan.y, (rows * d * 4) as u64), (&*plan.gates, (rows * n * 4) as u64), (&*plan.slots, (rows * n * 4) as u64)];
            let out = execute(&self.ctx, &plan.x, &x.data[start * m * d..(start + len) * m * d], &plan.ops, &reads, &plan.staging).await?;
            y.extend_from_slice(&out[..rows * d]);
            gates.extend_from_slice(&out[rows * d..rows * (d + n)]);
            slots.extend(decode_slots(&out[rows * (d + n)..]));
            start += len;
        }
        Ok(SparseOutput { y: Tensor { shape: vec![b, m, d], data: y }, gates: Tensor { shape: vec![b, m, c.n], data: gates }, slots })
    }

    /// Images per submit: whole groups within the memory budget and binding limits.
    pub(crate) fn chunk_size(&self, b: usize, m: usize) -> Result<usize> {
        let c = &self.config;
        let per_image = 4 * (3 * m * c.d + 2 * m * c.n) as u64 + SparseScratch::bytes_per_image(c, m);
        let largest = SparseScratch::bytes_per_image(c, m).max(4 * (m * c.d) as u64) * c.group_size as u64;
        let chunk = chunk_size(&self.ctx, b, per_image, largest, &format!("{m} tokens"))?;
        Ok(whole_groups(chunk, b, c.group_size))
    }

    fn build_plan(&self, b: usize, m: usize) -> Result<Plan> {
        let ctx = &self.ctx;
        let c = &self.config;
        let buf = |len: usize, label: &str| ctx.pool.acquire(&ctx.device, (len * 4) as u64, STORAGE, label);
        let x = buf(b * m * c.d, "x");
        let y = buf(b * m * c.d, "y");
        let gates = buf(b * m * c.n, "gates");
        let slots = buf(b * m * c.n, "slots");
        let scratch = SparseScratch::new(ctx, &[c], b, m);
        let ops = self.encode(&x, &y, &gates, &slots, &scratch, b, m, false)?;
        let staging = ctx.pool.acquire(&ctx.device, (b * m * (c.d + 2 * c.n) * 4) as u64, READBACK, "readback");
        Ok(Plan { x, y, gates, slots, staging, ops, _scratch: scratch })
    }

    /// The layer's dispatches from `x` [b, m, d] to `y` (or `y +=` with `residual`), writing the
    /// gates and slots; a model encodes these inside its own pass.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn encode(
        &self,
        x: &wgpu::Buffer,
        y: &wgpu::Buffer,
        gates: &wgpu::Buffer,
        slots: &wgpu::Buffer,
        scratch: &SparseScratch,
        b: usize,
        m: usize,
        residual: bool,
    ) -> Result<Vec<Op>> {
        let ctx = &self.ctx;
        let c = &self.config;
        let (d, n, h) = (c.d, c.n, c.h);
        let s = RouteShape::new(&c.router, b, m, n, c.group_size);
        let rows = b * m;
        let mut ops = vec![
            dense(rows, d, n, Activation::None, false).op(ctx, x, &self.wr, None, &scratch.logits)?,
            combine_softmax::op(ctx, &scratch.logits, gates, rows, n)?,
            sparse_route::op(ctx, &c.router, &s, gates, slots)?,
        ];
        // vmoe's Bfloat16Dispatcher: the router saw the f32 tokens, the experts get them rounded
        // (x in place), and the gated sum takes the experts' outputs rounded.
        if c.dispatch_bfloat16 {
            ops.push(round_bf16::op(ctx, x, rows * d)?);
        }
        ops.push(sparse_gather::op(ctx, &s, d, slots, x, &scratch.slots_in)?);
        ops.push(stages::dense0(s.groups, n, s.cap_full, d, h, 0..n, c.gelu).op(
            ctx,
            &scratch.slots_in,
            &self.w0,
            Some(&self.b0),
            &scratch.hidden,
        )?);
        ops.push(stages::dense1(s.groups, n, s.cap_full, d, h, 0..n).op(
            ctx,
            &scratch.hidden,
            &self.w1,
            Some(&self.b1),
            &scratch.slots_out,
        )?);
        if c.dispatch_bfloat16 {
            ops.push(round_bf16::op(ctx, &scratch.slots_out, s.groups * n * s.cap_full * d)?);
        }
        ops.push(sparse_combine::op(ctx, &s, d, gates, slots, &scratch.slots_out, y, residual)?);
        Ok(ops)
    }
}

/// `chunk` rounded down to whole groups of `group` images (at least one group), at most `b`.
pub(crate) fn whole_groups(chunk: usize, b: usize, group: usize) -> usize {
    let g = group.max(1);
    (chunk / g * g).max(g).min(b)
}
