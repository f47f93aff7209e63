//! `add_position` against its f64 reference: one f32 addition per element, so exact.

use super::op;
use super::reference::add_position;
use crate::random::Rng;
use crate::testing::{assert_bits, run_and_read, shared_context, upload};

#[test]
fn adds_the_embedding_to_every_image() {
    let mut rng = Rng::new(101);
    let c = shared_context();
    for (b, period) in [(1, 1), (5, 49 * 13), (3, 67)] {
        let (pos, x) = (rng.vec(period, 1.0), rng.vec(b * period, 1.0));
        let (pb, xb) = (upload(&c, &pos), upload(&c, &x));
        let got = run_and_read(&c, &[&op(&c, &pb, &xb, b * period, period).unwrap()], &xb, b * period);
        // f64 addition of two f32 values rounds to the f32 sum once cast back.
        let mut want: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        add_position(&mut want, &pos);
        let want: Vec<f64> = want.into_iter().map(|v| v as f32 as f64).collect();
        assert_bits(&format!("position b{b} period {period}"), &got, &want);
    }
}
