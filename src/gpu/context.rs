//! Adapter and device set-up: the adapter's real limits are requested, not WebGPU's defaults.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::gpu::{BufferPool, PipelineCache};

/// How to pick the device.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Ask for WebGPU's default limits instead of the adapter's, to test what a browser guarantees.
    pub webgpu_default_limits: bool,
    /// Prefer a low-power adapter.
    pub low_power: bool,
    /// Use at most this many bytes per storage binding, below the device's limit: leaves headroom,
    /// and lets tests exercise the splitting that large models need on small devices.
    pub max_binding_bytes: Option<u64>,
    /// Leave subgroup operations unused even where the adapter offers them (browsers do not offer
    /// them through wgpu yet): runs the portable reductions, for tests and comparisons.
    pub no_subgroups: bool,
    /// Leave `shader-f16` unused even where the adapter offers it: f16 weights are then refused,
    /// as on a device without the feature, so the refusal can be tested anywhere.
    pub no_shader_f16: bool,
    /// Choose kernels as for an adapter of this type instead of the real one: runs the kernels a GPU
    /// gets on a CPU adapter (lavapipe), so tests and benchmarks cover them there too.
    pub kernels_for: Option<wgpu::DeviceType>,
}

/// A device with its queue, what it can do, and the caches shared by every layer on it.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    pub adapter_features: wgpu::Features,
    pub pipelines: PipelineCache,
    pub pool: Arc<BufferPool>,
    lost: Arc<Mutex<Option<String>>>,
    binding_cap: u64,
    kernels_for: wgpu::DeviceType,
}

impl GpuContext {
    /// The default adapter with its full limits.
    pub async fn new() -> Result<Arc<Self>> {
        Self::with_options(GpuOptions::default()).await
    }

    /// Requests an adapter and a device as `opts` says.
    pub async fn with_options(opts: GpuOptions) -> Result<Arc<Self>> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: if opts.low_power { wgpu::PowerPreference::LowPower } else { wgpu::PowerPreference::HighPerformance },
                ..Default::default()
            })
            .await
            .map_err(|e| {
                Error::NoAdapter(format!(
                    "{e} (natively, install a Vulkan, Metal or DX12 driver, e.g. Debian's mesa-vulkan-drivers; in a browser, enable WebGPU)"
                ))
            })?;
        let limits = if opts.webgpu_default_limits { wgpu::Limits::default() } else { adapter.limits() };
        let adapter_features = adapter.features();
        // Timestamp queries only time kernels (benchmarks, `profile`); f16 is used only when a layer asks
        // for f16 weights; subgroups speed up the router's reductions. All are requested where offered.
        let mut wanted = wgpu::Features::TIMESTAMP_QUERY;
        if !opts.no_shader_f16 {
            wanted |= wgpu::Features::SHADER_F16;
        }
        if !opts.no_subgroups {
            wanted |= wgpu::Features::SUBGROUP;
        }
        let features = adapter_features & wanted;
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("softmoe"),
                required_features: features,
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::device("requesting the device (request_device)", e))?;
        // Errors outside our error scopes are reported, never turned into a panic.
        device.on_uncaptured_error(Arc::new(|e: wgpu::Error| {
            eprintln!("softmoe: uncaptured wgpu error: {e}");
        }));
        let lost = Arc::new(Mutex::new(None));
        let lost_flag = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            *lost_flag.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("{reason:?}: {message}"));
        });
        let limits = device.limits();
        let info = adapter.get_info();
        Ok(Arc::new(GpuContext {
            lost,
            binding_cap: opts.max_binding_bytes.unwrap_or(u64::MAX),
            kernels_for: opts.kernels_for.unwrap_or(info.device_type),
            info,
            device,
            queue,
            limits,
            features,
            adapter_features,
            pipelines: PipelineCache::default(),
            pool: Arc::new(BufferPool::new(256 << 20)),
        }))
    }

    /// Fails once the device is lost (driver reset, `destroy`), naming the reason.
    pub fn check_alive(&self) -> Result<()> {
        match &*self.lost.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(why) => Err(Error::DeviceLost { reason: why.clone() }),
            None => Ok(()),
        }
    }

    /// A read-only storage buffer holding `contents` (a weight tensor), refused with an error naming
    /// the limit when it cannot be bound whole.
    pub fn upload(&self, name: &str, contents: &[u8]) -> Result<wgpu::Buffer> {
        use wgpu::util::DeviceExt;
        let bytes = contents.len() as u64;
        if bytes > self.max_binding() {
            return Err(Error::Limit {
                what: format!("tensor `{name}`"),
                limit: "max_storage_buffer_binding_size",
                needed: bytes,
                max: self.max_binding(),
            });
        }
        // Zero-sized bindings are invalid; an empty tensor gets one unused word.
        let contents = if contents.is_empty() { &[0u8; 4][..] } else { contents };
        Ok(self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some(name),
            contents,
            usage: wgpu::BufferUsages::STORAGE,
        }))
    }

    /// The adapter type kernels are chosen for: the adapter's own unless `GpuOptions::kernels_for`
    /// says otherwise.
    pub fn kernels_for(&self) -> wgpu::DeviceType {
        self.kernels_for
    }

    /// Whether kernels get pipelines compiled for their switches (WGSL pipeline constants such as
    /// the GEMM's `SWITCHES`): on CPU adapters, which run switched-off branches masked, natively. Not
    /// in the browser, where compiling the extra pipelines (SwiftShader: the demo's cold load went
    /// from 3.5 to 5.4 s) costs more than they save on a page's few images.
    pub fn specialize_pipelines(&self) -> bool {
        self.kernels_for == wgpu::DeviceType::Cpu && !cfg!(target_arch = "wasm32")
    }

    /// The largest buffer one storage binding may hold, in bytes.
    pub fn max_binding(&self) -> u64 {
        self.limits.max_storage_buffer_binding_size.min(self.limits.max_buffer_size).min(self.binding_cap)
    }

    /// A human-readable report: adapter, backend, device type, limits and features.
    pub fn describe(&self) -> String {
        let i = &self.info;
        let l = &self.limits;
        let mut s = String::new();
        let _ = writeln!(s, "adapter: {}", i.name);
        let _ = writeln!(s, "backend: {:?}", i.backend);
        let _ = writeln!(s, "device type: {:?}", i.device_type);
        let _ = writeln!(s, "driver: {} {}", i.driver, i.driver_info);
        let _ = writeln!(s, "vendor: {:#06x}  device: {:#06x}", i.vendor, i.device);
        let _ = writeln!(s, "limits:");
        let rows: [(&str, u64); 10] = [
            ("max_buffer_size", l.max_buffer_size),
            ("max_storage_buffer_binding_size", l.max_storage_buffer_binding_size),
            ("max_uniform_buffer_binding_size", l.max_uniform_buffer_binding_size),
            ("max_storage_buffers_per_shader_stage", l.max_storage_buffers_per_shader_stage as u64),
            ("max_compute_workgroups_per_dimension", l.max_compute_workgroups_per_dimension as u64),
            ("max_compute_invocations_per_workgroup", l.max_compute_invocations_per_workgroup as u64),
            ("max_compute_workgroup_size_x", l.max_compute_workgroup_size_x as u64),
            ("max_compute_workgroup_storage_size", l.max_compute_workgroup_storage_size as u64),
            ("max_bind_groups", l.max_bind_groups as u64),
            ("min_storage_buffer_offset_alignment", l.min_storage_buffer_offset_alignment as u64),
        ];
        for (name, v) in rows {
            let _ = writeln!(s, "  {name}: {v}");
        }
        let _ = writeln!(s, "adapter features: {:?}", self.adapter_features);
        let _ = write!(s, "features in use: {:?}", self.features);
        s
    }
}
