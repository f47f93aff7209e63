//! `layer_norm` against its f64 reference at odd widths.

use super::op;
use super::reference::layer_norm;
use crate::random::Rng;
use crate::testing::{assert_close, run_and_read, shared_context, to_f64, upload};

#[test]
fn matches_the_reference_at_odd_widths() {
    let mut rng = Rng::new(102);
    let c = shared_context();
    for (rows, d) in [(1, 1), (3, 7), (65, 64), (130, 97)] {
        let x: Vec<f32> = rng.vec(rows * d, 3.0).into_iter().map(|v| v + 2.0).collect();
        let (scale, bias) = (rng.vec(d, 1.5), rng.vec(d, 0.5));
        let (xb, ab, yb) = (upload(&c, &x), upload(&c, &[scale.clone(), bias.clone()].concat()), upload(&c, &vec![0.0; rows * d]));
        let got = run_and_read(&c, &[&op(&c, &xb, &ab, &yb, rows, d, 1e-6).unwrap()], &yb, rows * d);
        let want = layer_norm(&to_f64(&x), d, &scale, &bias, 1e-6);
        // d = 1 has zero variance: the output is the bias, up to eps.
        assert_close(&format!("layer norm {rows}x{d}"), &got, &want, 1e-5);
    }
}
