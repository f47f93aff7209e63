//! Compute pipelines compiled once per device and entry point, cached behind the kernel's name and
//! its overridden constants.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::gpu::{KernelParams, ParamsLayout};

/// A WGSL kernel: its file name (the cache key), source and the layout of its uniform (`Op` binds
/// only params of that layout). Every kernel's entry point is `main`.
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    pub name: &'static str,
    pub source: &'static str,
    pub params: ParamsLayout,
}

impl Kernel {
    /// The kernel `name` of `source` (see `kernels::wgsl!`), whose uniform is a `P`.
    pub const fn new<P: KernelParams>(name: &'static str, source: &'static str) -> Kernel {
        Kernel { name, source, params: P::LAYOUT }
    }
}

/// A pipeline's cache key: its kernel's name and the values of the constants it overrides.
type PipelineKey = (&'static str, Vec<(&'static str, u32)>);

/// Pipelines keyed by kernel name and the values of its overridden constants; bind group layouts come
/// from the pipeline (layout: auto).
#[derive(Default)]
pub struct PipelineCache {
    map: Mutex<HashMap<PipelineKey, Arc<wgpu::ComputePipeline>>>,
}

impl PipelineCache {
    /// The pipeline of `kernel`, compiling it on first use.
    pub fn get(&self, device: &wgpu::Device, kernel: &Kernel) -> Arc<wgpu::ComputePipeline> {
        self.get_specialized(device, kernel, &[])
    }

    /// The pipeline of `kernel` with `constants` overridden, compiling it on first use.
    pub fn get_specialized(&self, device: &wgpu::Device, kernel: &Kernel, constants: &[(&'static str, u32)]) -> Arc<wgpu::ComputePipeline> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.entry((kernel.name, constants.to_vec()))
            .or_insert_with(|| {
                let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(kernel.name),
                    source: wgpu::ShaderSource::Wgsl(kernel.source.into()),
                });
                let values: Vec<(&str, f64)> = constants.iter().map(|&(name, v)| (name, f64::from(v))).collect();
                Arc::new(device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(kernel.name),
                    layout: None,
                    module: &module,
                    entry_point: Some("main"),
                    compilation_options: wgpu::PipelineCompilationOptions { constants: &values, ..Default::default() },
                    cache: None,
                }))
            })
            .clone()
    }

    /// How many pipelines have been compiled.
    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
