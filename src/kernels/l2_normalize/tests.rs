//! `l2_normalize` over rows and over columns against its f64 reference, at sizes that do and do not
//! fill a workgroup.

use super::reference::l2_normalize;
use super::{columns_op, rows_op};
use crate::random::Rng;
use crate::testing::{assert_close, f32_tol, run_and_read, shared_context, to_f64, upload};

#[test]
fn rows_and_columns_match_the_reference() {
    let mut rng = Rng::new(1);
    let c = shared_context();
    for (rows, cols) in [(1, 1), (7, 13), (65, 3), (130, 67), (3, 300)] {
        let x = rng.vec(rows * cols, 2.0);
        let (src, dst) = (upload(&c, &x), upload(&c, &vec![0.0; x.len()]));
        let got = run_and_read(&c, &[&rows_op(&c, &src, &dst, rows, cols).unwrap()], &dst, x.len());
        assert_close(&format!("rows {rows}x{cols}"), &got, &l2_normalize(&to_f64(&x), rows, cols, cols, 1), f32_tol(cols, 1.0));
        let got = run_and_read(&c, &[&columns_op(&c, &src, &dst, rows, cols).unwrap()], &dst, x.len());
        assert_close(&format!("cols {rows}x{cols}"), &got, &l2_normalize(&to_f64(&x), cols, rows, 1, cols), f32_tol(rows, 1.0));
    }
}
