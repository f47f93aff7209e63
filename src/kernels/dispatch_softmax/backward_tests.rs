//! The dispatch softmax's backward: f64 against central differences, the kernel against f64.

use super::backward::backward_op;
use super::backward_reference::dispatch_softmax_backward;
use super::reference::dispatch_softmax;
use crate::random::Rng;
use crate::reference::grad_check::check_gradient;
use crate::testing::{assert_close, f32_tol, run_and_read, shared_context, to_f64, upload};

#[test]
fn the_f64_gradient_is_the_slope() {
    let mut rng = Rng::new(380);
    let (m, s) = (5, 3);
    let l = to_f64(&rng.vec(m * s, 3.0));
    let w = to_f64(&rng.vec(m * s, 1.0));
    let g = dispatch_softmax_backward(&dispatch_softmax(&l, m, s), &w, m, s);
    check_gradient("dispatch softmax", &l, |l| dispatch_softmax(l, m, s).iter().zip(&w).map(|(a, b)| a * b).sum(), &g, 1e-8);
}

#[test]
fn matches_the_reference_per_example() {
    let mut rng = Rng::new(381);
    let c = shared_context();
    for (b, m, s) in [(1, 1, 1), (1, 4, 2), (3, 17, 5), (2, 300, 1), (5, 49, 130)] {
        let l = to_f64(&rng.vec(b * m * s, 5.0));
        let dd = rng.vec(b * m * s, 1.0);
        let dm: Vec<f64> = (0..b).flat_map(|e| dispatch_softmax(&l[e * m * s..(e + 1) * m * s], m, s)).collect();
        let dm32: Vec<f32> = dm.iter().map(|&v| v as f32).collect();
        let (db, gb, ob) = (upload(&c, &dm32), upload(&c, &dd), upload(&c, &vec![0.0; b * m * s]));
        let got = run_and_read(&c, &[&backward_op(&c, &db, &gb, &ob, b, m, s).unwrap()], &ob, b * m * s);
        let (d64, g64) = (to_f64(&dm32), to_f64(&dd));
        let want: Vec<f64> = (0..b)
            .flat_map(|e| dispatch_softmax_backward(&d64[e * m * s..(e + 1) * m * s], &g64[e * m * s..(e + 1) * m * s], m, s))
            .collect();
        assert_close(&format!("dispatch backward {b}x{m}x{s}"), &got, &want, f32_tol(m, 2.0));
    }
}
