//! LayerNorm's backward: the f64 gradients against central differences, the kernels against f64.

use super::backward::{backward_op, param_grad_op};
use super::backward_reference::layer_norm_backward;
use super::reference::layer_norm;
use crate::random::Rng;
use crate::reference::grad_check::{check_gradient, check_gradient_with_step};
use crate::testing::{assert_close, f32_tol, run_and_read, shared_context, to_f64, upload};

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

#[test]
fn the_f64_gradients_are_the_slopes() {
    let mut rng = Rng::new(360);
    let (rows, d) = (3, 5);
    let x = to_f64(&rng.vec(rows * d, 2.0));
    let (scale, bias) = (rng.vec(d, 1.5), rng.vec(d, 0.5));
    let w = to_f64(&rng.vec(rows * d, 1.0));
    let (dx, ds, db) = layer_norm_backward(&x, d, &scale, &w, 1e-6);
    check_gradient("layer norm x", &x, |x| dot(&layer_norm(x, d, &scale, &bias, 1e-6), &w), &dx, 1e-7);
    let s64 = to_f64(&scale);
    let f32s = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
    // Scale and bias are f32 in the forward: checked with steps f32 can hold.
    check_gradient_with_step("layer norm scale", &s64, |s| dot(&layer_norm(&x, d, &f32s(s), &bias, 1e-6), &w), &ds, 1e-4, 1e-3);
    check_gradient_with_step("layer norm bias", &to_f64(&bias), |b| dot(&layer_norm(&x, d, &scale, &f32s(b), 1e-6), &w), &db, 1e-4, 1e-3);
}

#[test]
fn matches_the_reference_at_odd_widths() {
    let mut rng = Rng::new(361);
    let c = shared_context();
    for (rows, d, accumulate) in [(1, 1, false), (3, 7, true), (65, 64, false), (130, 97, true)] {
        let x: Vec<f32> = rng.vec(rows * d, 3.0).into_iter().map(|v| v + 2.0).collect();
        let (scale, bias) = (rng.vec(d, 1.5), rng.vec(d, 0.5));
        let dy = rng.vec(rows * d, 1.0);
        let dx0 = rng.vec(rows * d, 1.0);
        let (xb, ab, gb, dxb) = (upload(&c, &x), upload(&c, &[scale.clone(), bias].concat()), upload(&c, &dy), upload(&c, &dx0));
        let (sb, pb) = (upload(&c, &vec![0.0; 2 * rows]), upload(&c, &vec![0.0; 2 * d]));
        let bwd = backward_op(&c, &xb, &ab, &gb, &dxb, &sb, rows, d, 1e-6, accumulate).unwrap();
        let pg = param_grad_op(&c, &xb, &sb, &gb, &pb, rows, d).unwrap();
        let (mut want_dx, ds, db) = layer_norm_backward(&to_f64(&x), d, &scale, &to_f64(&dy), 1e-6);
        if accumulate {
            want_dx.iter_mut().zip(&dx0).for_each(|(a, &b)| *a += b as f64);
        }
        // d = 1 has zero variance: x̂ = 0 and dx = 0 (up to eps), as the reference says.
        let got = run_and_read(&c, &[&bwd, &pg], &dxb, rows * d);
        let big = want_dx.iter().fold(1.0f64, |a, v| a.max(v.abs()));
        assert_close(&format!("layer norm dx {rows}x{d}"), &got, &want_dx, f32_tol(d, 4.0 * big));
        let got = run_and_read(&c, &[&bwd, &pg], &pb, 2 * d);
        assert_close(&format!("layer norm d scale, d bias {rows}x{d}"), &got, &[ds, db].concat(), f32_tol(rows, 4.0 * rows as f64));
    }
}
