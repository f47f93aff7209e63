//! `combine_softmax` (over slots) against its f64 reference.

use super::op;
use super::reference::combine_softmax;
use crate::random::Rng;
use crate::testing::{assert_close, f32_tol, run_and_read, shared_context, to_f64, upload};

#[test]
fn matches_the_reference() {
    let mut rng = Rng::new(3);
    let c = shared_context();
    for (b, m, s) in [(1, 1, 1), (1, 4, 2), (3, 17, 5), (2, 300, 1), (5, 49, 130)] {
        let l = rng.vec(b * m * s, 30.0);
        let (src, dst) = (upload(&c, &l), upload(&c, &vec![0.0; l.len()]));
        let got = run_and_read(&c, &[&op(&c, &src, &dst, b * m, s).unwrap()], &dst, l.len());
        // Weights ≤ 1 from a length-s sum of exponentials.
        assert_close(&format!("combine {b}x{m}x{s}"), &got, &combine_softmax(&to_f64(&l), b * m, s), f32_tol(s, 1.0));
    }
}
