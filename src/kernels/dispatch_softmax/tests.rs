//! `dispatch_softmax` (over tokens) against its f64 reference per example.

use super::op;
use super::reference::dispatch_softmax;
use crate::random::Rng;
use crate::testing::{assert_close, f32_tol, run_and_read, shared_context, to_f64, upload};

#[test]
fn matches_the_reference_per_example() {
    let mut rng = Rng::new(2);
    let c = shared_context();
    for (b, m, s) in [(1, 1, 1), (1, 4, 2), (3, 17, 5), (2, 300, 1), (5, 49, 130)] {
        let l = rng.vec(b * m * s, 30.0);
        let (src, dst) = (upload(&c, &l), upload(&c, &vec![0.0; l.len()]));
        let got = run_and_read(&c, &[&op(&c, &src, &dst, b, m, s).unwrap()], &dst, l.len());
        let lf = to_f64(&l);
        let want: Vec<f64> = (0..b).flat_map(|e| dispatch_softmax(&lf[e * m * s..(e + 1) * m * s], m, s)).collect();
        // Weights ≤ 1 from a length-m sum of exponentials.
        assert_close(&format!("dispatch {b}x{m}x{s}"), &got, &want, f32_tol(m, 1.0));
    }
}
