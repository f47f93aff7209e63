//! Device set-up, the pipeline cache, the buffer pool and async readback.

mod context;
mod params;
mod pipelines;
mod plan_cache;
mod pool;
mod readback;

pub use context::{GpuContext, GpuOptions};
pub(crate) use params::{kernel_params, wgsl};
pub use params::{KernelParams, ParamField, ParamsLayout};
pub use pipelines::{Kernel, PipelineCache};
pub use plan_cache::PlanCache;
pub use pool::{BufferPool, PooledBuffer};
pub use readback::{read_bytes, read_f32};

use crate::error::{Error, Result};

/// Splits `total` workgroups into an (x, y) grid with x ≤ `max_per_dim`; shaders rebuild the
/// linear index as `wid.x + wid.y * num_workgroups.x` (`workgroup_index` in kernels/common.wgsl)
/// and skip the overhang.
pub fn workgroup_grid(total: u64, max_per_dim: u32) -> Result<(u32, u32)> {
    let max = max_per_dim.max(1) as u64;
    if total == 0 {
        return Ok((0, 0));
    }
    let x = total.min(max);
    let y = total.div_ceil(x);
    if y > max {
        return Err(Error::Limit {
            what: format!("a dispatch of {total} workgroups"),
            limit: "max_compute_workgroups_per_dimension (squared)",
            needed: total,
            max: max * max,
        });
    }
    Ok((x as u32, y as u32))
}

/// Usage of every intermediate buffer: bound as storage, copied in and out.
pub const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);
/// Usage of the staging buffer a forward reads back through.
pub const READBACK: wgpu::BufferUsages = wgpu::BufferUsages::MAP_READ.union(wgpu::BufferUsages::COPY_DST);

/// Intermediate memory one chunk of a batch may use; larger batches run in several submits.
pub const CHUNK_BUDGET_BYTES: u64 = 256 << 20;

/// How many examples of a batch of `batch` go in one submit: within the memory budget, and with every
/// buffer within one storage binding. `per_example` is all buffers' bytes for one example, `largest`
/// the largest single buffer's.
pub fn chunk_size(ctx: &GpuContext, batch: usize, per_example: u64, largest: u64, what: &str) -> Result<usize> {
    let max_binding = ctx.max_binding();
    if largest > max_binding {
        return Err(Error::Limit {
            what: format!("one example of {what} (its largest intermediate buffer)"),
            limit: "max_storage_buffer_binding_size",
            needed: largest,
            max: max_binding,
        });
    }
    let by_budget = (CHUNK_BUDGET_BYTES / per_example.max(1)).max(1);
    let by_binding = max_binding / largest.max(1);
    Ok((batch as u64).min(by_budget).min(by_binding).max(1) as usize)
}

#[cfg(test)]
mod tests {
    use super::workgroup_grid;

    #[test]
    fn grid_covers_total_and_respects_the_limit() {
        for total in [1u64, 7, 65_535, 65_536, 200_000, 3_000_000_000] {
            let (x, y) = workgroup_grid(total, 65_535).unwrap();
            assert!(x <= 65_535 && y <= 65_535);
            assert!(x as u64 * y as u64 >= total);
            assert!((x as u64) * (y as u64 - 1) < total, "no all-idle row for {total}");
        }
        assert!(workgroup_grid(65_536u64 * 65_536, 65_535).is_err());
    }
}
