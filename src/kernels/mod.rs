//! WGSL kernels and the Rust that binds and dispatches them. Shapes travel in a uniform, a typed
//! params struct per kernel (see `params`); the shaders are shape-agnostic. Every kernel's source
//! starts with `kernels/common.wgsl` (the workgroup size `WG_SIZE` = `WORKGROUP_SIZE` and the
//! flattened index of a folded grid). Each `Op` is one recorded dispatch: pipeline, bind group, grid.

pub mod adamw;
pub mod add_position;
pub mod attention;
pub mod column_sum;
pub mod combine_softmax;
pub mod cross_entropy;
pub mod dispatch_softmax;
mod execute;
pub mod gelu;
pub mod gemm;
pub mod grad_norm;
pub mod l2_normalize;
pub mod layer_norm;
pub mod mean_pool;
pub mod patchify;
pub mod rms_norm;
pub mod round_bf16;
pub mod router_scale;
pub mod router_softmax;
pub mod slot_experts;
pub mod sparse_combine;
pub mod sparse_gather;
pub mod sparse_route;
pub mod transpose;

use std::sync::Arc;

use wgpu::util::DeviceExt;

use crate::error::{Error, Result};
pub(crate) use crate::gpu::{kernel_params, wgsl};
use crate::gpu::{workgroup_grid, GpuContext, Kernel};
pub use crate::gpu::{KernelParams, ParamField, ParamsLayout};
pub use execute::{execute, Readback};

/// Invocations per workgroup of every kernel but the tiled GEMM and the fused router softmax: one
/// item each in `Op::per_item` kernels and the naive GEMM, one column (group) each in the skinny and
/// vec4 GEMMs. `WG_SIZE` in `kernels/common.wgsl`; `tests::common_wgsl_has_the_host_workgroup_size`
/// checks the two agree.
pub const WORKGROUP_SIZE: u32 = 64;

/// Every WGSL kernel of the crate.
pub const KERNELS: &[Kernel] = &[
    l2_normalize::KERNEL,
    dispatch_softmax::KERNEL,
    combine_softmax::KERNEL,
    router_softmax::SUBGROUP_KERNEL,
    router_softmax::SHARED_KERNEL,
    router_softmax::LOGITS_SUBGROUP_KERNEL,
    router_softmax::LOGITS_SHARED_KERNEL,
    gemm::KERNEL,
    gemm::SKINNY_KERNEL,
    gemm::NAIVE_KERNEL,
    gemm::VEC4_KERNEL,
    gemm::VEC4_F16_KERNEL,
    gemm::TILED_VEC4_KERNEL,
    gemm::TILED_VEC4_F16_KERNEL,
    gemm::VEC4_WIDE_KERNEL,
    gemm::VEC4_WIDE_F16_KERNEL,
    gemm::VEC4_ONE_B_KERNEL,
    gemm::VEC4_F16_ONE_B_KERNEL,
    gemm::VEC4_WIDE_ONE_B_KERNEL,
    gemm::VEC4_WIDE_F16_ONE_B_KERNEL,
    gemm::VEC4_WIDE16_KERNEL,
    gemm::VEC4_WIDE16_F16_KERNEL,
    gemm::VEC4_WIDE16_ONE_B_KERNEL,
    gemm::VEC4_WIDE16_F16_ONE_B_KERNEL,
    gemm::SPLITK_KERNELS[0],
    gemm::SPLITK_KERNELS[1],
    gemm::SPLITK_KERNELS[2],
    gemm::SPLITK_F16_KERNELS[0],
    gemm::SPLITK_F16_KERNELS[1],
    gemm::SPLITK_F16_KERNELS[2],
    patchify::KERNEL,
    add_position::KERNEL,
    layer_norm::KERNEL,
    attention::KERNEL,
    mean_pool::KERNEL,
    round_bf16::KERNEL,
    rms_norm::KERNEL,
    sparse_route::KERNEL,
    sparse_gather::KERNEL,
    sparse_combine::KERNEL,
    slot_experts::KERNELS[0],
    slot_experts::KERNELS[1],
    // Training: the backward kernels (beside their forwards), the loss and the optimiser.
    mean_pool::backward::BACKWARD_KERNEL,
    layer_norm::backward::BACKWARD_KERNEL,
    layer_norm::backward::PARAM_GRAD_KERNEL,
    attention::backward::QUERY_KERNEL,
    attention::backward::KEY_KERNEL,
    dispatch_softmax::backward::BACKWARD_KERNEL,
    combine_softmax::backward::BACKWARD_KERNEL,
    l2_normalize::backward::BACKWARD_KERNEL,
    router_scale::KERNEL,
    router_scale::BACKWARD_KERNEL,
    gelu::KERNEL,
    gelu::BACKWARD_KERNEL,
    column_sum::KERNEL,
    cross_entropy::KERNEL,
    cross_entropy::BACKWARD_KERNEL,
    grad_norm::KERNEL,
    grad_norm::FINISH_KERNEL,
    adamw::KERNEL,
    transpose::KERNEL,
];

/// One dispatch, ready to encode: created once (per forward plan), encoded on every call.
pub struct Op {
    label: &'static str,
    pipeline: Arc<wgpu::ComputePipeline>,
    bind_group: wgpu::BindGroup,
    grid: (u32, u32),
    _uniform: wgpu::Buffer,
}

impl Op {
    /// Binds `params` at binding 0 and `buffers` at bindings 1.. of `kernel`'s group 0.
    pub fn new<P: KernelParams>(ctx: &GpuContext, kernel: &Kernel, params: &P, buffers: &[&wgpu::Buffer], workgroups: u64) -> Result<Op> {
        let numbered: Vec<(u32, &wgpu::Buffer)> = buffers.iter().enumerate().map(|(i, b)| (i as u32 + 1, *b)).collect();
        Self::with_bindings(ctx, kernel, params, &numbered, workgroups)
    }

    /// Binds `params` at binding 0 and each buffer at its given binding. `params` must be the type
    /// `kernel` was declared with (a mismatch is a bug and panics).
    pub fn with_bindings<P: KernelParams>(
        ctx: &GpuContext,
        kernel: &Kernel,
        params: &P,
        buffers: &[(u32, &wgpu::Buffer)],
        workgroups: u64,
    ) -> Result<Op> {
        Self::specialized(ctx, kernel, &[], params, buffers, workgroups)
    }

    /// As `with_bindings`, on the pipeline of `kernel` with the WGSL `override`s in `constants` set
    /// where the context compiles pipelines for their switches (`GpuContext::specialize_pipelines`);
    /// elsewhere on the pipeline with the WGSL defaults, which read the same switches from the uniform.
    pub fn specialized<P: KernelParams>(
        ctx: &GpuContext,
        kernel: &Kernel,
        constants: &[(&'static str, u32)],
        params: &P,
        buffers: &[(u32, &wgpu::Buffer)],
        workgroups: u64,
    ) -> Result<Op> {
        assert_eq!(kernel.params, P::LAYOUT, "{} bound with the params of another kernel", kernel.name);
        // The uniform buffer is rounded up to 16 bytes, the granule of the uniform address space.
        let mut contents = bytemuck::bytes_of(params).to_vec();
        contents.resize(contents.len().div_ceil(16).max(1) * 16, 0);
        let constants = if ctx.specialize_pipelines() { constants } else { &[] };
        let pipeline = ctx.pipelines.get_specialized(&ctx.device, kernel, constants);
        let uniform = ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(kernel.name),
            contents: &contents,
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let max_binding = ctx.max_binding() & !3;
        let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() }];
        for &(binding, buf) in buffers {
            // Pooled buffers may be rounded past the binding limit; bind only what the limit allows.
            let size = buf.size().min(max_binding);
            entries.push(wgpu::BindGroupEntry {
                binding,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding { buffer: buf, offset: 0, size: wgpu::BufferSize::new(size) }),
            });
        }
        let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.name),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        Ok(Op {
            label: kernel.name,
            pipeline,
            bind_group,
            grid: workgroup_grid(workgroups, ctx.limits.max_compute_workgroups_per_dimension)?,
            _uniform: uniform,
        })
    }

    /// A kernel of `WORKGROUP_SIZE` invocations per workgroup, one per item (`item_index` of
    /// common.wgsl), for `items` items.
    pub fn per_item<P: KernelParams>(ctx: &GpuContext, kernel: &Kernel, params: &P, buffers: &[&wgpu::Buffer], items: usize) -> Result<Op> {
        Op::new(ctx, kernel, params, buffers, items.div_ceil(WORKGROUP_SIZE as usize) as u64)
    }

    /// Records the dispatch into a compute pass.
    pub fn encode(&self, pass: &mut wgpu::ComputePass<'_>) {
        if self.grid.0 == 0 {
            return;
        }
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.grid.0, self.grid.1, 1);
    }

    pub fn label(&self) -> &'static str {
        self.label
    }
}

/// Encodes `ops` in order into one compute pass of a new encoder.
pub fn encode_ops(ctx: &GpuContext, ops: &[&Op]) -> wgpu::CommandEncoder {
    let mut encoder = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("softmoe") });
    {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("softmoe"), timestamp_writes: None });
        for op in ops {
            op.encode(&mut pass);
        }
    }
    encoder
}

/// The GPU time of each op in seconds, each in its own timestamped pass; None when the device has
/// no timestamp queries. For benchmarks and profiling, not for the forward path.
pub async fn profile_ops(ctx: &GpuContext, ops: &[&Op]) -> Result<Option<Vec<f64>>> {
    if !ctx.features.contains(wgpu::Features::TIMESTAMP_QUERY) || ops.is_empty() {
        return Ok(None);
    }
    let n = ops.len() as u32;
    let queries =
        ctx.device.create_query_set(&wgpu::QuerySetDescriptor { label: Some("profile"), ty: wgpu::QueryType::Timestamp, count: 2 * n });
    let bytes = 16 * n as u64;
    let resolve = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("profile resolve"),
        size: bytes,
        usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("profile readback"),
        size: bytes,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut encoder = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("profile") });
    for (i, op) in ops.iter().enumerate() {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(op.label()),
            timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                query_set: &queries,
                beginning_of_pass_write_index: Some(2 * i as u32),
                end_of_pass_write_index: Some(2 * i as u32 + 1),
            }),
        });
        op.encode(&mut pass);
    }
    encoder.resolve_query_set(&queries, 0..2 * n, &resolve, 0);
    encoder.copy_buffer_to_buffer(&resolve, 0, &staging, 0, bytes);
    ctx.queue.submit([encoder.finish()]);
    let raw = crate::gpu::read_bytes(ctx, &staging, bytes).await?;
    let ticks: Vec<u64> = raw.chunks_exact(8).map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])).collect();
    let period_ns = ctx.queue.get_timestamp_period() as f64;
    Ok(Some(ticks.chunks_exact(2).map(|t| t[1].saturating_sub(t[0]) as f64 * period_ns * 1e-9).collect()))
}

/// Converts a size or stride to the u32 a uniform holds, naming it when it does not fit.
pub(crate) fn u32_of(v: usize, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| Error::input(what, "at most u32::MAX (the 32-bit indices of the kernels)", v))
}

#[cfg(test)]
mod tests;
