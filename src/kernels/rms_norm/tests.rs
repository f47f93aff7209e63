//! `rms_norm` over rows and over columns against its f64 reference, at sizes that do and do not
//! fill a workgroup, with a zero vector (the clamp: zeros out, no NaN) and vectors far below and
//! above 1e-12 in norm.

use super::reference::rms_norm;
use super::{columns_op, rows_op};
use crate::random::Rng;
use crate::testing::{assert_close, f32_tol, run_and_read, shared_context, to_f64, upload};

#[test]
fn rows_and_columns_match_the_reference() {
    let mut rng = Rng::new(3);
    let c = shared_context();
    for (rows, cols) in [(1, 1), (7, 13), (65, 3), (130, 67), (3, 300)] {
        let mut x = rng.vec(rows * cols, 2.0);
        // Row 0 zero: F.normalize clamps its norm to 1e-12 and returns zeros.
        x[..cols].fill(0.0);
        let (gr, gc) = (rng.vec(cols, 1.5), rng.vec(rows, 1.5));
        let (src, dst) = (upload(&c, &x), upload(&c, &vec![0.0; x.len()]));
        let (gr_buf, gc_buf) = (upload(&c, &gr), upload(&c, &gc));
        // |output| ≤ √len · max |γ|.
        let got = run_and_read(&c, &[&rows_op(&c, &src, &gr_buf, &dst, rows, cols).unwrap()], &dst, x.len());
        let want = rms_norm(&to_f64(&x), &to_f64(&gr), rows, cols, cols, 1);
        assert!(want[..cols].iter().all(|&v| v == 0.0) && got[..cols].iter().all(|&v| v == 0.0), "rows {rows}x{cols}: zero row");
        assert_close(&format!("rows {rows}x{cols}"), &got, &want, f32_tol(cols, 1.5 * (cols as f64).sqrt()));
        let got = run_and_read(&c, &[&columns_op(&c, &src, &gc_buf, &dst, rows, cols).unwrap()], &dst, x.len());
        let want = rms_norm(&to_f64(&x), &to_f64(&gc), cols, rows, 1, cols);
        assert_close(&format!("cols {rows}x{cols}"), &got, &want, f32_tol(rows, 1.5 * (rows as f64).sqrt()));
    }
}

#[test]
fn the_norm_is_clamped_not_offset() {
    // ‖v‖ = 5e-13 < 1e-12: v / 1e-12 (the clamp); ‖v‖ = 1e-6: v / ‖v‖ exactly, where vmoe's eps
    // inside the square root (1/sqrt(‖v‖² + 1e-6)) would give about v · 1000.
    let c = shared_context();
    let (len, gamma) = (4, vec![1.0f32; 4]);
    for scale in [2.5e-13f32, 5e-7] {
        let x: Vec<f32> = [1.0f32, -1.0, 1.0, 1.0].iter().map(|v| v * scale).collect();
        let want_norm = (2.0 * scale as f64).max(1e-12);
        let (src, g, dst) = (upload(&c, &x), upload(&c, &gamma), upload(&c, &[0.0; 4]));
        let got = run_and_read(&c, &[&rows_op(&c, &src, &g, &dst, 1, len).unwrap()], &dst, len);
        let want: Vec<f64> = x.iter().map(|&v| v as f64 / want_norm * 2.0).collect();
        assert_close(&format!("‖v‖ = {}", 2.0 * scale), &got, &want, 1e-5 * want[0].abs().max(1.0));
        assert_close("reference", &rms_norm(&to_f64(&x), &to_f64(&gamma), 1, len, len, 1), &want, 1e-12 * want[0].abs().max(1.0));
        // Not vmoe's normalisation (times √len = 2), which these norms put far off.
        let vmoe = crate::reference::l2_normalize(&to_f64(&x), 1, len, len, 1);
        assert!((vmoe[0] * 2.0 - want[0]).abs() > 0.1, "‖v‖ = {}: {} vs {}", 2.0 * scale, vmoe[0] * 2.0, want[0]);
    }
}
