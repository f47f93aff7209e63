//! `column_sum` against its f64 reference: plain, grouped, strided, offset and accumulating.

use super::reference::column_sum;
use super::ColumnSum;
use crate::random::Rng;
use crate::testing::{assert_close, f32_tol, run_and_read, shared_context, to_f64, upload};

#[test]
fn matches_the_reference_at_odd_shapes() {
    let mut rng = Rng::new(300);
    let c = shared_context();
    let cases = [
        ColumnSum::rows(1, 1),
        ColumnSum::rows(6272, 3),
        ColumnSum::rows(7, 67),
        ColumnSum::grouped(5, 13, 9),
        // Rows 11 apart, columns 3..8 of each, into the middle of a longer vector, added on.
        ColumnSum { src_offset: 3, src_row_stride: 11, dst_offset: 4, accumulate: true, ..ColumnSum::grouped(3, 17, 5) },
        // One column of per-slot partial sums (the router scale's gradient).
        ColumnSum::rows(129, 1),
    ];
    for cs in cases {
        let src_len = cs.src_offset + (cs.groups - 1) * cs.src_group_stride + (cs.rows - 1) * cs.src_row_stride + cs.cols + 2;
        let dst_len = cs.dst_offset + (cs.groups - 1) * cs.dst_group_stride + cs.cols + 3;
        let (src, dst) = (rng.vec(src_len, 2.0), rng.vec(dst_len, 1.0));
        let (sb, db) = (upload(&c, &src), upload(&c, &dst));
        let got = run_and_read(&c, &[&cs.op(&c, &sb, &db).unwrap()], &db, dst_len);
        let want = column_sum(&cs, &to_f64(&src), &to_f64(&dst));
        assert_close(&format!("{cs:?}"), &got, &want, f32_tol(cs.rows, 2.0 * cs.rows as f64 + 1.0));
    }
}
