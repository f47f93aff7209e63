//! `mean_pool_backward` against its f64 reference, which is checked against central differences.

use super::backward::backward_op;
use super::backward_reference::mean_pool_backward;
use super::reference::mean_pool;
use crate::random::Rng;
use crate::reference::grad_check::check_gradient;
use crate::testing::{assert_close, run_and_read, shared_context, to_f64, upload};

#[test]
fn the_f64_gradient_is_the_slope() {
    let mut rng = Rng::new(350);
    let (b, m, d) = (2, 3, 4);
    let x = to_f64(&rng.vec(b * m * d, 1.0));
    let w = to_f64(&rng.vec(b * d, 1.0));
    check_gradient(
        "mean pool",
        &x,
        |x| mean_pool(x, b, m, d).iter().zip(&w).map(|(a, b)| a * b).sum(),
        &mean_pool_backward(&w, b, m, d),
        1e-8,
    );
}

#[test]
fn matches_the_reference() {
    let mut rng = Rng::new(351);
    let c = shared_context();
    for (b, m, d) in [(1, 1, 1), (3, 49, 64), (2, 67, 5)] {
        let g = rng.vec(b * d, 1.0);
        let (gb, xb) = (upload(&c, &g), upload(&c, &vec![0.0; b * m * d]));
        let got = run_and_read(&c, &[&backward_op(&c, &gb, &xb, b, m, d).unwrap()], &xb, b * m * d);
        assert_close(&format!("mean pool backward {b}x{m}x{d}"), &got, &mean_pool_backward(&to_f64(&g), b, m, d), 1e-7);
    }
}
