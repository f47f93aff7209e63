//! `column_sum` in f64.

use super::ColumnSum;

/// The sums `cs` describes, into a copy of `dst` (added to it with `cs.accumulate`).
pub fn column_sum(cs: &ColumnSum, src: &[f64], dst: &[f64]) -> Vec<f64> {
    let mut out = dst.to_vec();
    for g in 0..cs.groups {
        for c in 0..cs.cols {
            let sum: f64 = (0..cs.rows).map(|r| src[cs.src_offset + g * cs.src_group_stride + r * cs.src_row_stride + c]).sum();
            let at = cs.dst_offset + g * cs.dst_group_stride + c;
            out[at] = if cs.accumulate { out[at] + sum } else { sum };
        }
    }
    out
}
