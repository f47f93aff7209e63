//! WGSL kernels and the Rust that binds and dispatches them. Shapes travel in a uniform; the
//! shaders are shape-agnostic. Each `Op` is one recorded dispatch: pipeline, bind group, grid.

pub mod add_position;
pub mod attention;
pub mod combine;
pub mod combine_softmax;
pub mod dense;
pub mod dispatch_softmax;
pub mod expert_mlp;
pub mod l2_normalize;
pub mod layer_norm;
pub mod logits;
pub mod matmul;
pub mod mean_pool;
pub mod patchify;
pub mod router_softmax;
pub mod slot_inputs;
pub mod sparse_combine;
pub mod sparse_gather;
pub mod sparse_route;

use std::sync::Arc;

use wgpu::util::DeviceExt;

use crate::error::{Error, Result};
use crate::gpu::{workgroup_grid, GpuContext, Kernel};

/// Every WGSL kernel of the crate.
pub const KERNELS: &[Kernel] = &[
    l2_normalize::KERNEL,
    dispatch_softmax::KERNEL,
    combine_softmax::KERNEL,
    router_softmax::SUBGROUP_KERNEL,
    router_softmax::SHARED_KERNEL,
    matmul::KERNEL,
    matmul::SKINNY_KERNEL,
    matmul::NAIVE_KERNEL,
    matmul::VEC4_KERNEL,
    matmul::VEC4_F16_KERNEL,
    patchify::KERNEL,
    add_position::KERNEL,
    layer_norm::KERNEL,
    attention::KERNEL,
    mean_pool::KERNEL,
    sparse_route::KERNEL,
    sparse_gather::KERNEL,
    sparse_combine::KERNEL,
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
    pub fn new(ctx: &GpuContext, kernel: &Kernel, params: &[u8], buffers: &[&wgpu::Buffer], workgroups: u64) -> Result<Op> {
        let numbered: Vec<(u32, &wgpu::Buffer)> = buffers.iter().enumerate().map(|(i, b)| (i as u32 + 1, *b)).collect();
        Self::with_bindings(ctx, kernel, params, &numbered, workgroups)
    }

    /// Binds `params` at binding 0 and each buffer at its given binding.
    pub fn with_bindings(
        ctx: &GpuContext,
        kernel: &Kernel,
        params: &[u8],
        buffers: &[(u32, &wgpu::Buffer)],
        workgroups: u64,
    ) -> Result<Op> {
        let pipeline = ctx.pipelines.get(&ctx.device, kernel);
        let uniform = ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(kernel.name),
            contents: params,
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

    /// A kernel of 64 invocations per workgroup, one per item, whose uniform is `params` (u32 words,
    /// f32 passed as bits), padded to 16 bytes.
    pub fn per_item(ctx: &GpuContext, kernel: &Kernel, params: &[u32], buffers: &[&wgpu::Buffer], items: usize) -> Result<Op> {
        let mut words = params.to_vec();
        words.resize(params.len().div_ceil(4).max(1) * 4, 0);
        Op::new(ctx, kernel, bytemuck::cast_slice(&words), buffers, items.div_ceil(64) as u64)
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
    u32::try_from(v).map_err(|_| Error::Input(format!("{what} = {v} exceeds the 32-bit indices of the kernels")))
}

#[cfg(test)]
mod tests {
    use super::KERNELS;

    #[test]
    fn every_wgsl_file_parses_and_validates() {
        for k in KERNELS {
            let module = naga::front::wgsl::parse_str(k.source).unwrap_or_else(|e| panic!("{}: {}", k.name, e.emit_to_string(k.source)));
            let caps = if k.source.starts_with("enable f16;") {
                naga::valid::Capabilities::SHADER_FLOAT16
            } else if k.source.contains("subgroupAdd") {
                naga::valid::Capabilities::SUBGROUP
            } else {
                naga::valid::Capabilities::empty()
            };
            naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
                .validate(&module)
                .unwrap_or_else(|e| panic!("{}: {:?}", k.name, e));
            assert!(module.entry_points.iter().any(|e| e.name == "main"), "{} has no `main`", k.name);
        }
    }

    #[test]
    fn every_shader_file_is_part_of_a_registered_kernel() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/shaders");
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "wgsl") {
                let text = std::fs::read_to_string(&path).unwrap();
                assert!(
                    KERNELS.iter().any(|k| k.source.contains(&text)),
                    "{} is in no kernel of KERNELS, so it is never validated",
                    path.display()
                );
            }
        }
    }
}
