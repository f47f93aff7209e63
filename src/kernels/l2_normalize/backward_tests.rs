//! The L2 normalisation's backward: f64 against central differences, the kernel against f64 over
//! rows and over columns.

use super::backward::backward_op;
use super::backward_reference::l2_normalize_backward;
use super::reference::l2_normalize;
use crate::random::Rng;
use crate::reference::grad_check::check_gradient;
use crate::testing::{assert_close, f32_tol, run_and_read, shared_context, to_f64, upload};

#[test]
fn the_f64_gradient_is_the_slope() {
    let mut rng = Rng::new(400);
    let (rows, cols) = (3, 4);
    let x = to_f64(&rng.vec(rows * cols, 1.0));
    let w = to_f64(&rng.vec(rows * cols, 1.0));
    for (count, len, vs, es) in [(rows, cols, cols, 1), (cols, rows, 1, cols)] {
        let g = l2_normalize_backward(&x, &w, count, len, vs, es);
        let f = |x: &[f64]| l2_normalize(x, count, len, vs, es).iter().zip(&w).map(|(a, b)| a * b).sum();
        check_gradient("l2 normalize", &x, f, &g, 1e-8);
    }
}

#[test]
fn rows_and_columns_match_the_reference() {
    let mut rng = Rng::new(401);
    let c = shared_context();
    for (rows, cols, accumulate) in [(1, 1, false), (7, 13, true), (65, 3, false), (130, 67, true)] {
        let x = rng.vec(rows * cols, 2.0);
        let dy = rng.vec(rows * cols, 1.0);
        let dx0 = rng.vec(rows * cols, 1.0);
        for (count, len, vs, es) in [(rows, cols, cols, 1), (cols, rows, 1, cols)] {
            let (xb, gb, ob) = (upload(&c, &x), upload(&c, &dy), upload(&c, &dx0));
            let got = run_and_read(&c, &[&backward_op(&c, &xb, &gb, &ob, count, len, vs, es, accumulate).unwrap()], &ob, x.len());
            let mut want = l2_normalize_backward(&to_f64(&x), &to_f64(&dy), count, len, vs, es);
            if accumulate {
                want.iter_mut().zip(&dx0).for_each(|(a, &b)| *a += b as f64);
            }
            let big = want.iter().fold(1.0f64, |a, v| a.max(v.abs()));
            assert_close(&format!("l2 backward {count}x{len}"), &got, &want, f32_tol(len, 4.0 * big));
        }
    }
}
