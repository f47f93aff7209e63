//! `column_sum.wgsl`: sums over the rows of strided matrices, in row order. What a bias, the
//! position embedding and the router scale get as gradient: Σ over the rows their value was added to.

use super::{kernel_params, u32_of, wgsl, Op};
use crate::error::Result;
use crate::gpu::{GpuContext, Kernel};

pub mod reference;
#[cfg(test)]
mod tests;

pub const KERNEL: Kernel = Kernel::new::<ColumnSumParams>("column_sum", wgsl!("column_sum/column_sum.wgsl"));

kernel_params! {
    pub struct ColumnSumParams {
        groups: u32,
        rows: u32,
        cols: u32,
        src_off: u32,
        src_gs: u32,
        src_rs: u32,
        dst_off: u32,
        dst_gs: u32,
        flags: u32,
    }
}

/// Which values a column sum reads and where it writes: `groups` matrices of `rows` × `cols`, group g's
/// row r at `src_offset + g·src_group_stride + r·src_row_stride`; the sums of group g at
/// `dst_offset + g·dst_group_stride`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColumnSum {
    pub groups: usize,
    pub rows: usize,
    pub cols: usize,
    pub src_offset: usize,
    pub src_group_stride: usize,
    pub src_row_stride: usize,
    pub dst_offset: usize,
    pub dst_group_stride: usize,
    /// Add into dst instead of overwriting it.
    pub accumulate: bool,
}

impl ColumnSum {
    /// The column sums of one row-major rows × cols matrix.
    pub const fn rows(rows: usize, cols: usize) -> Self {
        ColumnSum {
            groups: 1,
            rows,
            cols,
            src_offset: 0,
            src_group_stride: 0,
            src_row_stride: cols,
            dst_offset: 0,
            dst_group_stride: cols,
            accumulate: false,
        }
    }

    /// The column sums of each of `groups` row-major rows × cols matrices laid end to end.
    pub const fn grouped(groups: usize, rows: usize, cols: usize) -> Self {
        ColumnSum { groups, src_group_stride: rows * cols, ..Self::rows(rows, cols) }
    }

    pub fn op(&self, ctx: &GpuContext, src: &wgpu::Buffer, dst: &wgpu::Buffer) -> Result<Op> {
        let items = self.groups * self.cols;
        let params = ColumnSumParams {
            groups: u32_of(self.groups, "column-sum groups")?,
            rows: u32_of(self.rows, "column-sum rows")?,
            cols: u32_of(self.cols, "column-sum columns")?,
            src_off: u32_of(self.src_offset, "column-sum source offset")?,
            src_gs: u32_of(self.src_group_stride, "column-sum group stride")?,
            src_rs: u32_of(self.src_row_stride, "column-sum row stride")?,
            dst_off: u32_of(self.dst_offset, "column-sum destination offset")?,
            dst_gs: u32_of(self.dst_group_stride, "column-sum destination stride")?,
            flags: u32::from(self.accumulate),
        };
        u32_of(items, "column-sum outputs")?;
        Op::per_item(ctx, &KERNEL, &params, &[src, dst], items)
    }
}
