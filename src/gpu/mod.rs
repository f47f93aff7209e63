//! Device set-up, the pipeline cache, the buffer pool and async readback.

mod context;
mod pipelines;
mod pool;
mod readback;

pub use context::{GpuContext, GpuOptions};
pub use pipelines::{Kernel, PipelineCache};
pub use pool::{BufferPool, PooledBuffer};
pub use readback::read_f32;

use crate::error::{Error, Result};

/// Splits `total` workgroups into an (x, y) grid with x ≤ `max_per_dim`; shaders rebuild the
/// linear index as `wid.x + wid.y * num_workgroups.x` and skip the overhang.
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

#[cfg(test)]
mod tests {
    use super::workgroup_grid;

    #[test]
    fn grid_covers_total_and_respects_the_limit() {
        for total in [1u64, 7, 65_535, 65_536, 200_000, 3_000_000_000] {
            let (x, y) = workgroup_grid(total, 65_535).unwrap();
            assert!(x <= 65_535 && y <= 65_535);
            assert!(x as u64 * y as u64 >= total);
            assert!(
                (x as u64) * (y as u64 - 1) < total,
                "no all-idle row for {total}"
            );
        }
        assert!(workgroup_grid(65_536u64 * 65_536, 65_535).is_err());
    }
}
