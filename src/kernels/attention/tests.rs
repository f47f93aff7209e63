//! `attention` against its f64 reference at several head shapes.

use super::op;
use super::reference::attention;
use crate::random::Rng;
use crate::testing::{assert_close, run_and_read, shared_context, to_f64, upload};

#[test]
fn matches_the_reference_at_several_head_shapes() {
    let mut rng = Rng::new(103);
    let c = shared_context();
    for (b, m, heads, hd) in [(1, 1, 1, 1), (2, 49, 4, 16), (3, 17, 3, 5), (1, 70, 2, 33)] {
        let d = heads * hd;
        let qkv = rng.vec(b * m * 3 * d, 1.5);
        let (qb, ob) = (upload(&c, &qkv), upload(&c, &vec![0.0; b * m * d]));
        let got = run_and_read(&c, &[&op(&c, &qb, &ob, b, m, heads, hd).unwrap()], &ob, b * m * d);
        let want = attention(&to_f64(&qkv), b, m, heads, hd);
        assert_close(&format!("attention b{b} m{m} {heads}x{hd}"), &got, &want, 2e-6 * (1.0 + hd as f64).sqrt());
    }
}
