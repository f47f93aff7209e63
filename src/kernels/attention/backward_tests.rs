//! The attention backward: the f64 gradient against central differences, the kernels against f64.

use super::backward::{backward_ops, STATS_PER_ROW};
use super::backward_reference::attention_backward;
use super::op;
use super::reference::attention;
use crate::random::Rng;
use crate::reference::grad_check::check_gradient;
use crate::testing::{assert_close, run_and_read, shared_context, to_f64, upload};

#[test]
fn the_f64_gradient_is_the_slope() {
    let mut rng = Rng::new(370);
    let (b, m, heads, hd) = (2, 3, 2, 3);
    let qkv = to_f64(&rng.vec(b * m * 3 * heads * hd, 1.5));
    let w = to_f64(&rng.vec(b * m * heads * hd, 1.0));
    let g = attention_backward(&qkv, &w, b, m, heads, hd);
    check_gradient("attention", &qkv, |x| attention(x, b, m, heads, hd).iter().zip(&w).map(|(a, b)| a * b).sum(), &g, 1e-7);
}

#[test]
fn matches_the_reference_at_several_head_shapes() {
    let mut rng = Rng::new(371);
    let c = shared_context();
    for (b, m, heads, hd) in [(1, 1, 1, 1), (2, 49, 4, 16), (3, 17, 3, 5), (1, 70, 2, 33)] {
        let d = heads * hd;
        let qkv = rng.vec(b * m * 3 * d, 1.5);
        let dout = rng.vec(b * m * d, 1.0);
        let (qb, ob, gb) = (upload(&c, &qkv), upload(&c, &vec![0.0; b * m * d]), upload(&c, &dout));
        let (dqb, sb) = (upload(&c, &vec![0.0; b * m * 3 * d]), upload(&c, &vec![0.0; b * heads * m * STATS_PER_ROW]));
        let fwd = op(&c, &qb, &ob, b, m, heads, hd, None).unwrap();
        let [q, k] = backward_ops(&c, &qb, &ob, &gb, &dqb, &sb, b, m, heads, hd).unwrap();
        let got = run_and_read(&c, &[&fwd, &q, &k], &dqb, b * m * 3 * d);
        let want = attention_backward(&to_f64(&qkv), &to_f64(&dout), b, m, heads, hd);
        let big = want.iter().fold(1.0f64, |a, v| a.max(v.abs()));
        assert_close(&format!("attention backward b{b} m{m} {heads}x{hd}"), &got, &want, 4e-6 * big * (1.0 + (m * hd) as f64).sqrt());
    }
}
