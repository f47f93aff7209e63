//! `mean_pool` against its f64 reference.

use super::op;
use super::reference::mean_pool;
use crate::random::Rng;
use crate::testing::{assert_close, f32_tol, run_and_read, shared_context, to_f64, upload};

#[test]
fn matches_the_reference() {
    let mut rng = Rng::new(104);
    let c = shared_context();
    for (b, m, d) in [(1, 1, 1), (3, 49, 64), (2, 67, 5)] {
        let x = rng.vec(b * m * d, 1.0);
        let (xb, pb) = (upload(&c, &x), upload(&c, &vec![0.0; b * d]));
        let got = run_and_read(&c, &[&op(&c, &xb, &pb, b, m, d).unwrap()], &pb, b * d);
        assert_close(&format!("mean pool {b}x{m}x{d}"), &got, &mean_pool(&to_f64(&x), b, m, d), f32_tol(m, 1.0));
    }
}
