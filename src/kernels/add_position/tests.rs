//! `add_position` against its f64 reference: one f32 addition per element, so exact.

use super::op;
use super::reference::{add_position, set_or_add_position};
use crate::random::Rng;
use crate::testing::{assert_bits, run_and_read, shared_context, upload};

#[test]
fn adds_the_embedding_to_every_image() {
    let mut rng = Rng::new(101);
    let c = shared_context();
    for (b, period) in [(1, 1), (5, 49 * 13), (3, 67)] {
        let (pos, x) = (rng.vec(period, 1.0), rng.vec(b * period, 1.0));
        let (pb, xb) = (upload(&c, &pos), upload(&c, &x));
        let got = run_and_read(&c, &[&op(&c, &pb, &xb, b * period, period, 0).unwrap()], &xb, b * period);
        // f64 addition of two f32 values rounds to the f32 sum once cast back.
        let mut want: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        add_position(&mut want, &pos);
        let want: Vec<f64> = want.into_iter().map(|v| v as f32 as f64).collect();
        assert_bits(&format!("position b{b} period {period}"), &got, &want);
    }
}

#[test]
fn sets_the_class_token_row_of_every_image() {
    let mut rng = Rng::new(106);
    let c = shared_context();
    for (b, tokens, d) in [(1, 2, 1), (3, 50, 13), (2, 17, 24)] {
        let period = tokens * d;
        // NaN where the class token's row is: whatever was there must not leak through.
        let mut x = rng.vec(b * period, 1.0);
        x.chunks_mut(period).for_each(|e| e[..d].fill(f32::NAN));
        let pos = rng.vec(period, 1.0);
        let (pb, xb) = (upload(&c, &pos), upload(&c, &x));
        let got = run_and_read(&c, &[&op(&c, &pb, &xb, b * period, period, d).unwrap()], &xb, b * period);
        let mut want: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        set_or_add_position(&mut want, &pos, d);
        let want: Vec<f64> = want.into_iter().map(|v| v as f32 as f64).collect();
        assert_bits(&format!("class token b{b} tokens {tokens} d {d}"), &got, &want);
        assert!(got.chunks(period).all(|e| e[..d].iter().zip(&pos).all(|(a, &p)| *a == p as f64)));
    }
}
