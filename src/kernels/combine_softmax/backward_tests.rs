//! The combine softmax's backward: f64 against central differences, the kernel against f64.

use super::backward::backward_op;
use super::backward_reference::combine_softmax_backward;
use super::reference::combine_softmax;
use crate::random::Rng;
use crate::reference::grad_check::check_gradient;
use crate::testing::{assert_close, f32_tol, run_and_read, shared_context, to_f64, upload};

#[test]
fn the_f64_gradient_is_the_slope() {
    let mut rng = Rng::new(390);
    let (m, s) = (4, 6);
    let l = to_f64(&rng.vec(m * s, 3.0));
    let w = to_f64(&rng.vec(m * s, 1.0));
    let g = combine_softmax_backward(&combine_softmax(&l, m, s), &w, m, s);
    check_gradient("combine softmax", &l, |l| combine_softmax(l, m, s).iter().zip(&w).map(|(a, b)| a * b).sum(), &g, 1e-8);
}

#[test]
fn matches_the_reference() {
    let mut rng = Rng::new(391);
    let c = shared_context();
    for (rows, s, accumulate) in [(1, 1, false), (4, 2, true), (51, 5, false), (600, 1, true), (245, 130, true)] {
        let l = to_f64(&rng.vec(rows * s, 5.0));
        let cm: Vec<f32> = combine_softmax(&l, rows, s).into_iter().map(|v| v as f32).collect();
        let (dc, dl0) = (rng.vec(rows * s, 1.0), rng.vec(rows * s, 1.0));
        let (cb, gb, ob) = (upload(&c, &cm), upload(&c, &dc), upload(&c, &dl0));
        let got = run_and_read(&c, &[&backward_op(&c, &cb, &gb, &ob, rows, s, accumulate).unwrap()], &ob, rows * s);
        let mut want = combine_softmax_backward(&to_f64(&cm), &to_f64(&dc), rows, s);
        if accumulate {
            want.iter_mut().zip(&dl0).for_each(|(a, &b)| *a += b as f64);
        }
        assert_close(&format!("combine backward {rows}x{s}"), &got, &want, f32_tol(s, 2.0));
    }
}
