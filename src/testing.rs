//! Helpers shared by the kernel tests in `kernels/<op>/tests.rs` and the integration tests: one
//! device per test process, uploads, one-submit runs, and the suite's comparisons and f32 error
//! model. Not part of the API.

use std::sync::{Arc, OnceLock};

use crate::gpu::{read_f32, GpuContext, GpuOptions};
use crate::kernels::{encode_ops, Op};

/// One device for the whole test process; no adapter is a loud failure, never a skip.
/// `SOFTMOE_TEST_WEBGPU_LIMITS=1` runs within WebGPU's default limits and without subgroups, as a
/// browser would.
pub fn shared_context() -> Arc<GpuContext> {
    static CTX: OnceLock<Arc<GpuContext>> = OnceLock::new();
    let browser = std::env::var_os("SOFTMOE_TEST_WEBGPU_LIMITS").is_some();
    let opts = GpuOptions { webgpu_default_limits: browser, no_subgroups: browser, ..Default::default() };
    CTX.get_or_init(|| match pollster::block_on(GpuContext::with_options(opts)) {
        Ok(c) => c,
        Err(e) => panic!("GPU tests need a wgpu adapter (CI installs mesa-vulkan-drivers): {e}"),
    })
    .clone()
}

/// A storage buffer holding `data` (4 zero bytes when empty: bindings may not be empty).
pub fn upload(c: &GpuContext, data: &[f32]) -> wgpu::Buffer {
    upload_bytes(c, bytemuck::cast_slice(data))
}

/// As `upload`, for u32 data (slot tables).
pub fn upload_u32(c: &GpuContext, data: &[u32]) -> wgpu::Buffer {
    upload_bytes(c, bytemuck::cast_slice(data))
}

/// As `upload`, each value rounded to f16 (expert weights with `f16_weights`).
pub fn upload_f16(c: &GpuContext, data: &[f32]) -> wgpu::Buffer {
    let halves: Vec<u16> = data.iter().map(|&v| half::f16::from_f32(v).to_bits()).collect();
    upload_bytes(c, bytemuck::cast_slice(&halves))
}

fn upload_bytes(c: &GpuContext, bytes: &[u8]) -> wgpu::Buffer {
    use wgpu::util::DeviceExt;
    c.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("test"),
        contents: if bytes.is_empty() { &[0u8; 4] } else { bytes },
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
    })
}

/// Runs `ops` in one submit, then reads `len` f32 values of `out` as f64.
pub fn run_and_read(c: &GpuContext, ops: &[&Op], out: &wgpu::Buffer, len: usize) -> Vec<f64> {
    run_and_read_f32(c, ops, out, len).into_iter().map(f64::from).collect()
}

/// As `run_and_read`, keeping the raw f32 values (u32 outputs are read through their bits).
pub fn run_and_read_f32(c: &GpuContext, ops: &[&Op], out: &wgpu::Buffer, len: usize) -> Vec<f32> {
    let staging = c.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("test readback"),
        size: (len.max(1) * 4) as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = encode_ops(c, ops);
    enc.copy_buffer_to_buffer(out, 0, &staging, 0, (len * 4) as u64);
    c.queue.submit([enc.finish()]);
    pollster::block_on(read_f32(c, &staging, len)).expect("readback")
}

pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&a| a as f64).collect()
}

/// f32's relative rounding unit, 2⁻²³.
pub const EPS: f64 = f32::EPSILON as f64;

/// The suite's f32 error model, for outputs of size up to `magnitude` computed through reductions of
/// length up to `k`: a length-k f32 sum of random-signed terms rounds by about ε·√k times its terms'
/// size, at most ε·√k·magnitude; the + 8 covers the fixed-cost steps around it (exp, division,
/// square root, GELU). Measured errors use 1–50 % of it on lavapipe (`--nocapture` prints each).
pub fn f32_tol(k: usize, magnitude: f64) -> f64 {
    EPS * ((k as f64).sqrt() + 8.0) * magnitude
}

/// Exact equality of the bits (f32 or f64), reporting the first difference rather than both vectors.
pub fn assert_bits<A: Copy + Into<f64>>(what: &str, got: &[A], want: &[A]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let bits = |v: A| v.into().to_bits();
    if let Some(i) = (0..got.len()).find(|&i| bits(got[i]) != bits(want[i])) {
        panic!("{what}: first difference at {i} of {}: {} vs {}", got.len(), got[i].into(), want[i].into());
    }
}

/// Every element within `tol` of the reference, none NaN or infinite; the message names the worst one.
pub fn assert_close<A: Copy + Into<f64>, B: Copy + Into<f64>>(what: &str, got: &[A], want: &[B], tol: f64) {
    let d = crate::compare::max_abs_diff(got, want).unwrap_or_else(|e| panic!("{what}: {e}"));
    // Printed so that `--nocapture` shows every tolerance's headroom.
    eprintln!("{what}: max |error| {:.2e}, tolerance {tol:.2e} ({:.1}% used)", d.max, 100.0 * d.max / tol);
    if let Err(e) = d.within(what, tol) {
        panic!("{e}");
    }
}
