//! The adapter's own limits, measured in the same run as the benchmarks: sustained copy bandwidth
//! (copy_buffer_to_buffer and a vec4 copy kernel) and FMA throughput, so rows can report their share
//! of a roofline bound.

use std::sync::mpsc;
use std::time::Instant;

use softmoe::GpuContext;

use crate::timing::median;

const COPY_VEC4: &str = include_str!("limits/copy_vec4.wgsl");
const FMA_CHAIN: &str = include_str!("limits/fma_chain.wgsl");

/// Invocations per workgroup and vec4s per invocation of copy_vec4.wgsl: on lavapipe 256 beat 64
/// and 128, and 2 to 8 vec4s per invocation were alike.
const COPY_WG: u64 = 256;
const COPY_PER: u64 = 4;
/// Invocations per workgroup of the FMA kernel (fma_chain.wgsl's workgroup_size).
const FMA_WG: u64 = 256;
/// fma steps per chain (fma_chain.wgsl's STEPS).
const FMA_STEPS: u64 = 256;
/// Scalar FLOPs per FMA invocation: 4 vec4 chains × 4 lanes × STEPS × 2 FLOPs per fma.
const FMA_FLOPS_PER_INVOCATION: u64 = 4 * 4 * FMA_STEPS * 2;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// Measured peaks of this adapter. Bandwidths count bytes read plus bytes written.
#[derive(Clone, Debug)]
pub struct Limits {
    pub copy_kernel_gbs: f64,
    pub copy_buffer_gbs: f64,
    pub fma_gflops: f64,
    /// One line: sizes, repetitions and timing method.
    pub how: String,
}

impl Limits {
    /// The least time `flops` FLOPs and `bytes` bytes can take at the measured peaks (the roofline).
    pub fn roofline_secs(&self, flops: f64, bytes: f64) -> f64 {
        (flops / (self.fma_gflops * 1e9)).max(bytes / (self.copy_kernel_gbs * 1e9))
    }

    /// The share of the roofline bound that a run of `secs` seconds reaches (1 = at the bound).
    pub fn share(&self, flops: f64, bytes: f64, secs: f64) -> f64 {
        self.roofline_secs(flops, bytes) / secs
    }
}

/// Measures the limits: quick keeps it to a few seconds on a software rasteriser.
pub fn measure(ctx: &GpuContext, quick: bool) -> Res<Limits> {
    let l = ctx.device.limits();
    let want: u64 = if quick { 64 << 20 } else { 256 << 20 };
    let size = want.min(l.max_buffer_size).min(l.max_storage_buffer_binding_size) / 4096 * 4096;
    let reps = if quick { 5 } else { 9 };
    // Each sample runs for about this long at least, so launch and timing overheads stay small.
    let target = if quick { 0.03 } else { 0.1 };
    let timer = Timer::new(ctx);
    let max_dim = l.max_compute_workgroups_per_dimension.max(1) as u64;

    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST;
    let src = ctx.device.create_buffer(&wgpu::BufferDescriptor { label: Some("limits src"), size, usage, mapped_at_creation: false });
    let dst = ctx.device.create_buffer(&wgpu::BufferDescriptor { label: Some("limits dst"), size, usage, mapped_at_creation: false });
    // Written in chunks so the host never holds the whole buffer.
    let chunk = 16u64 << 20;
    for off in (0..size).step_by(chunk as usize) {
        let n = chunk.min(size - off) / 4;
        let data: Vec<f32> = (0..n).map(|i| pattern(off / 4 + i)).collect();
        ctx.queue.write_buffer(&src, off, bytemuck::cast_slice(&data));
    }

    // (a) copy_buffer_to_buffer.
    let copy_buffer = |enc: &mut wgpu::CommandEncoder| enc.copy_buffer_to_buffer(&src, 0, &dst, 0, size);
    let (buf_secs, buf_k) = sustained(ctx, &timer, reps, target, copy_buffer)?;
    check_copy(ctx, &dst, size, "copy_buffer_to_buffer")?;
    // Cleared so the kernel's check cannot pass on the previous copy's output.
    let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("limits clear") });
    enc.clear_buffer(&dst, 0, None);
    ctx.queue.submit([enc.finish()]);

    // (b) the vec4 copy kernel.
    let copy = Kernel::new(ctx, "limits copy_vec4", COPY_VEC4, &[&src, &dst]);
    let groups = (size / 16).div_ceil(COPY_WG * COPY_PER);
    let grid = fold(groups, max_dim);
    let copy_kernel = |enc: &mut wgpu::CommandEncoder| copy.encode(enc, grid);
    let (kern_secs, kern_k) = sustained(ctx, &timer, reps, target, copy_kernel)?;
    check_copy(ctx, &dst, size, "copy kernel")?;

    // FMA chains: the grid grows until one dispatch lasts about `target`.
    let out_len = 1u64 << 20;
    let out = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("limits fma out"),
        size: out_len * 4,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let fma = Kernel::new(ctx, "limits fma_chain", FMA_CHAIN, &[&out]);
    let mut fma_groups = 1024u64;
    let fma_secs = loop {
        let grid = fold(fma_groups, max_dim);
        let run = |enc: &mut wgpu::CommandEncoder| fma.encode(enc, grid);
        timer.sample(ctx, run)?; // warm-up
        let first = timer.sample(ctx, run)?;
        let cap = max_dim * max_dim.min(65535);
        if first >= target || fma_groups >= cap {
            let mut v = vec![first];
            for _ in 1..reps {
                v.push(timer.sample(ctx, run)?);
            }
            break median(v);
        }
        fma_groups = ((fma_groups as f64 * (1.2 * target / first.max(1e-6)).min(64.0)) as u64).clamp(fma_groups + 1, cap);
    };
    let fma_grid = fold(fma_groups, max_dim);
    let fma_flops = (fma_grid.0 as u64 * fma_grid.1 as u64 * FMA_WG * FMA_FLOPS_PER_INVOCATION) as f64;

    let moved = 2.0 * size as f64;
    let mib = size >> 20;
    let how = format!(
        "{mib} MiB buffers, bytes = read + written ({} MiB per copy); copy_buffer_to_buffer ×{buf_k} per sample; \
         vec4 copy kernel ({COPY_WG} invocations × {COPY_PER} vec4 per workgroup, {} × {} workgroups) ×{kern_k} per sample; \
         FMA: {} × {} workgroups of {FMA_WG} invocations, 16 fma chains × {FMA_STEPS} steps each, 2 FLOPs per fma; \
         median of {reps} samples after a warm-up, timed by {}",
        2 * mib,
        grid.0,
        grid.1,
        fma_grid.0,
        fma_grid.1,
        if timer.queries.is_some() { "GPU timestamp queries around each sample" } else { "wall clock around submit and wait" },
    );
    Ok(Limits {
        copy_kernel_gbs: moved * kern_k as f64 / kern_secs / 1e9,
        copy_buffer_gbs: moved * buf_k as f64 / buf_secs / 1e9,
        fma_gflops: fma_flops / fma_secs / 1e9,
        how,
    })
}

/// The value at float index `i` of the source buffer: exact in f32, and distinct from its neighbours.
fn pattern(i: u64) -> f32 {
    (i % 1_000_003) as f32 + 0.5
}

/// A grid of `groups` workgroups folded into 2-D so each dimension fits `max_dim`.
fn fold(groups: u64, max_dim: u64) -> (u32, u32) {
    let x = groups.clamp(1, max_dim);
    (x as u32, groups.div_ceil(x) as u32)
}

/// Median seconds of a sample of `k` back-to-back repetitions of `record`, `k` chosen after a
/// warm-up so a sample lasts about `target`; returns (seconds, k).
fn sustained(ctx: &GpuContext, timer: &Timer, reps: usize, target: f64, record: impl Fn(&mut wgpu::CommandEncoder)) -> Res<(f64, u32)> {
    timer.sample(ctx, &record)?; // warm-up: first touch of the pages and pipeline creation are slow
    let one = timer.sample(ctx, &record)?;
    let k = (target / one.max(1e-7)).ceil().clamp(1.0, 256.0) as u32;
    let repeated = |enc: &mut wgpu::CommandEncoder| (0..k).for_each(|_| record(enc));
    let v = (0..reps).map(|_| timer.sample(ctx, repeated)).collect::<Res<Vec<f64>>>()?;
    Ok((median(v), k))
}

/// A compute pipeline over storage buffers bound at 0, 1, ... of group 0.
struct Kernel {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
}

impl Kernel {
    fn new(ctx: &GpuContext, label: &str, source: &str, buffers: &[&wgpu::Buffer]) -> Self {
        let module = ctx
            .device
            .create_shader_module(wgpu::ShaderModuleDescriptor { label: Some(label), source: wgpu::ShaderSource::Wgsl(source.into()) });
        let pipeline = ctx.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(label),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        let entries: Vec<_> =
            buffers.iter().enumerate().map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32, resource: b.as_entire_binding() }).collect();
        let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        Kernel { pipeline, bind_group }
    }

    fn encode(&self, encoder: &mut wgpu::CommandEncoder, grid: (u32, u32)) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("limits"), timestamp_writes: None });
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(grid.0, grid.1, 1);
    }
}

/// Times one submission: GPU timestamps written by empty passes before and after the recorded
/// commands when the device has timestamp queries, else wall clock around submit and wait.
struct Timer {
    queries: Option<(wgpu::QuerySet, wgpu::Buffer, wgpu::Buffer)>,
    period_ns: f64,
}

impl Timer {
    fn new(ctx: &GpuContext) -> Self {
        let queries = ctx.features.contains(wgpu::Features::TIMESTAMP_QUERY).then(|| {
            let set =
                ctx.device.create_query_set(&wgpu::QuerySetDescriptor { label: Some("limits"), ty: wgpu::QueryType::Timestamp, count: 2 });
            let resolve = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("limits resolve"),
                size: 16,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            });
            let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("limits timestamps"),
                size: 16,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            (set, resolve, staging)
        });
        Timer { queries, period_ns: ctx.queue.get_timestamp_period() as f64 }
    }

    fn sample(&self, ctx: &GpuContext, record: impl Fn(&mut wgpu::CommandEncoder)) -> Res<f64> {
        let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("limits") });
        let Some((set, resolve, staging)) = &self.queries else {
            record(&mut enc);
            let t = Instant::now();
            ctx.queue.submit([enc.finish()]);
            ctx.device.poll(wgpu::PollType::wait_indefinitely())?;
            return Ok(t.elapsed().as_secs_f64());
        };
        let mark = |enc: &mut wgpu::CommandEncoder, begin: Option<u32>, end: Option<u32>| {
            let writes =
                wgpu::ComputePassTimestampWrites { query_set: set, beginning_of_pass_write_index: begin, end_of_pass_write_index: end };
            drop(enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("limits mark"), timestamp_writes: Some(writes) }));
        };
        mark(&mut enc, Some(0), None);
        record(&mut enc);
        mark(&mut enc, None, Some(1));
        enc.resolve_query_set(set, 0..2, resolve, 0);
        enc.copy_buffer_to_buffer(resolve, 0, staging, 0, 16);
        ctx.queue.submit([enc.finish()]);
        let raw = read(ctx, staging, 0, 16)?;
        let t0 = u64::from_le_bytes(raw[0..8].try_into()?);
        let t1 = u64::from_le_bytes(raw[8..16].try_into()?);
        if t1 <= t0 {
            return Err(format!("timestamps did not advance ({t0} then {t1})").into());
        }
        Ok((t1 - t0) as f64 * self.period_ns * 1e-9)
    }
}

/// Compares the start, middle and end of `dst` with the source pattern: a broken copy fails here
/// instead of reporting a rate.
fn check_copy(ctx: &GpuContext, dst: &wgpu::Buffer, size: u64, what: &str) -> Res<()> {
    let len = 4096u64.min(size);
    let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("limits check"),
        size: len,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    for off in [0, size / 2 / 16 * 16, size - len] {
        let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("limits check") });
        enc.copy_buffer_to_buffer(dst, off, &staging, 0, len);
        ctx.queue.submit([enc.finish()]);
        let got: Vec<f32> = bytemuck::pod_collect_to_vec(&read(ctx, &staging, 0, len)?);
        for (j, g) in got.iter().enumerate() {
            let i = off / 4 + j as u64;
            if *g != pattern(i) {
                return Err(format!("{what} is wrong: float {i} is {g}, expected {}", pattern(i)).into());
            }
        }
    }
    Ok(())
}

/// Maps a MAP_READ buffer and copies out `len` bytes from `off`.
fn read(ctx: &GpuContext, buffer: &wgpu::Buffer, off: u64, len: u64) -> Res<Vec<u8>> {
    let slice = buffer.slice(off..off + len);
    let (tx, rx) = mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    ctx.device.poll(wgpu::PollType::wait_indefinitely())?;
    rx.recv()??;
    let data = slice.get_mapped_range()?.to_vec();
    buffer.unmap();
    Ok(data)
}
