//! WGSL kernels and the Rust that binds and dispatches them. Shapes travel in a uniform, a typed
//! params struct per kernel (see `params`); the shaders are shape-agnostic. Every kernel's source
//! starts with `shaders/common.wgsl` (the workgroup size `WG_SIZE` = `WORKGROUP_SIZE` and the
//! flattened index of a folded grid). Each `Op` is one recorded dispatch: pipeline, bind group, grid.

pub mod add_position;
pub mod attention;
pub mod combine;
pub mod combine_softmax;
pub mod dense;
pub mod dispatch_softmax;
mod execute;
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
pub(crate) use crate::gpu::{kernel_params, wgsl};
use crate::gpu::{workgroup_grid, GpuContext, Kernel};
pub use crate::gpu::{KernelParams, ParamField, ParamsLayout};
pub use execute::{execute, Readback};

/// Invocations per workgroup of every kernel but the tiled GEMM and the fused router softmax: one
/// item each in `Op::per_item` kernels and the naive GEMM, one column (group) each in the skinny and
/// vec4 GEMMs. `WG_SIZE` in `shaders/common.wgsl`; `tests::common_wgsl_has_the_host_workgroup_size`
/// checks the two agree.
pub const WORKGROUP_SIZE: u32 = 64;

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
        assert_eq!(kernel.params, P::LAYOUT, "{} bound with the params of another kernel", kernel.name);
        // The uniform buffer is rounded up to 16 bytes, the granule of the uniform address space.
        let mut contents = bytemuck::bytes_of(params).to_vec();
        contents.resize(contents.len().div_ceil(16).max(1) * 16, 0);
        let pipeline = ctx.pipelines.get(&ctx.device, kernel);
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
    u32::try_from(v).map_err(|_| Error::Input(format!("{what} = {v} exceeds the 32-bit indices of the kernels")))
}

#[cfg(test)]
mod tests {
    use super::{KERNELS, WORKGROUP_SIZE};

    fn parse(name: &str, source: &str) -> naga::Module {
        naga::front::wgsl::parse_str(source).unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)))
    }

    /// The WGSL name of a 4-byte scalar type, as `kernel_params!` records the Rust one.
    fn scalar_name(inner: &naga::TypeInner) -> String {
        match inner {
            naga::TypeInner::Scalar(naga::Scalar { kind: naga::ScalarKind::Uint, width: 4 }) => "u32".into(),
            naga::TypeInner::Scalar(naga::Scalar { kind: naga::ScalarKind::Sint, width: 4 }) => "i32".into(),
            naga::TypeInner::Scalar(naga::Scalar { kind: naga::ScalarKind::Float, width: 4 }) => "f32".into(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn params_match_the_wgsl_structs() {
        for k in KERNELS {
            let module = parse(k.name, k.source);
            let (_, uniform) = module
                .global_variables
                .iter()
                .find(|(_, v)| v.binding == Some(naga::ResourceBinding { group: 0, binding: 0 }))
                .unwrap_or_else(|| panic!("{}: nothing at @group(0) @binding(0)", k.name));
            assert_eq!(uniform.space, naga::AddressSpace::Uniform, "{}: binding 0 is not the uniform", k.name);
            let ty = &module.types[uniform.ty];
            assert_eq!(ty.name.as_deref(), Some(k.params.wgsl_struct), "{}: the uniform's struct", k.name);
            let naga::TypeInner::Struct { members, span } = &ty.inner else { panic!("{}: the uniform is no struct", k.name) };
            let wgsl: Vec<(String, usize, String)> = members
                .iter()
                .map(|m| (m.name.clone().unwrap_or_default(), m.offset as usize, scalar_name(&module.types[m.ty].inner)))
                .collect();
            let rust: Vec<(String, usize, String)> = k.params.fields.iter().map(|f| (f.name.into(), f.offset, f.ty.into())).collect();
            assert_eq!(wgsl, rust, "{}: fields (name, offset, type) of {} in WGSL and in Rust", k.name, k.params.wgsl_struct);
            assert_eq!(*span as usize, k.params.size, "{}: size of {}", k.name, k.params.wgsl_struct);
        }
    }

    #[test]
    fn common_wgsl_has_the_host_workgroup_size() {
        let common = include_str!("../../shaders/common.wgsl");
        let module = parse("common.wgsl", common);
        let (_, wg) = module.constants.iter().find(|(_, c)| c.name.as_deref() == Some("WG_SIZE")).expect("common.wgsl defines WG_SIZE");
        let value = match module.global_expressions[wg.init] {
            naga::Expression::Literal(naga::Literal::U32(v)) => v,
            ref e => panic!("WG_SIZE is {e:?}, not a u32 literal"),
        };
        assert_eq!(value, WORKGROUP_SIZE, "WG_SIZE in common.wgsl and kernels::WORKGROUP_SIZE");
        // Every kernel starts with the snippet, and all but two (whose grids do not count in
        // WORKGROUP_SIZE) run WORKGROUP_SIZE invocations per workgroup.
        for k in KERNELS {
            assert!(k.source.trim_start_matches("enable f16;\n").starts_with(common), "{} does not start with common.wgsl", k.name);
            let module = parse(k.name, k.source);
            let size = module.entry_points.iter().find(|e| e.name == "main").map(|e| e.workgroup_size);
            let expected = match k.name {
                "batched_matmul" => [16, 16, 1],
                "router_softmax_subgroup" | "router_softmax_shared" => [256, 1, 1],
                _ => [WORKGROUP_SIZE, 1, 1],
            };
            assert_eq!(size, Some(expected), "{}: workgroup size", k.name);
        }
    }

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
