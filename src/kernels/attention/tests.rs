//! `attention` against its f64 reference at several head shapes, with and without LayerNorm on
//! queries and keys, as self-attention and as attention pooling.

use super::reference::{attend, attention, attention_qk, QkNormRef, Queries};
use super::{op, pool_op, QkNorm};
use crate::random::Rng;
use crate::testing::{assert_close, run_and_read, shared_context, to_f64, upload};

const SHAPES: [(usize, usize, usize, usize); 5] = [(1, 1, 1, 1), (2, 49, 4, 16), (3, 17, 3, 5), (1, 70, 2, 33), (2, 50, 3, 2)];

#[test]
fn matches_the_reference_at_several_head_shapes() {
    let mut rng = Rng::new(103);
    let c = shared_context();
    for (b, m, heads, hd) in SHAPES {
        let d = heads * hd;
        let qkv = rng.vec(b * m * 3 * d, 1.5);
        let (qb, ob) = (upload(&c, &qkv), upload(&c, &vec![0.0; b * m * d]));
        let got = run_and_read(&c, &[&op(&c, &qb, &ob, b, m, heads, hd, None).unwrap()], &ob, b * m * d);
        let want = attention(&to_f64(&qkv), b, m, heads, hd);
        assert_close(&format!("attention b{b} m{m} {heads}x{hd}"), &got, &want, 2e-6 * (1.0 + hd as f64).sqrt());
    }
}

#[test]
fn layer_norm_on_queries_and_keys_matches_the_reference() {
    let mut rng = Rng::new(104);
    let c = shared_context();
    for (b, m, heads, hd) in SHAPES {
        let d = heads * hd;
        // Shifted and scaled projections: the LayerNorm must take the mean and the scale out.
        let qkv: Vec<f32> = rng.vec(b * m * 3 * d, 3.0).into_iter().map(|v| v + 0.7).collect();
        let (qs, ks) = (rng.vec(hd, 1.0).into_iter().map(|v| 1.0 + v).collect::<Vec<f32>>(), rng.vec(hd, 2.0));
        let scales = upload(&c, &[qs.clone(), ks.clone()].concat());
        let (qb, ob) = (upload(&c, &qkv), upload(&c, &vec![0.0; b * m * d]));
        let norm = QkNorm { scales: &scales, eps: 1e-6 };
        let got = run_and_read(&c, &[&op(&c, &qb, &ob, b, m, heads, hd, Some(norm)).unwrap()], &ob, b * m * d);
        let want = attention_qk(&to_f64(&qkv), b, m, heads, hd, Some(QkNormRef { query: &qs, key: &ks, eps: 1e-6 }));
        // Normalised queries and keys of size ≤ √hd·max|scale| give scores up to 2·hd/√hd; the
        // softmax passes an error δ of the scores on as about δ·max|v|.
        assert_close(&format!("qk-norm attention b{b} m{m} {heads}x{hd}"), &got, &want, 8e-6 * (1.0 + hd as f64).sqrt());
        // The normalisation matters at these shapes (hd > 1): the plain attention differs.
        if hd > 1 {
            let plain = attention(&to_f64(&qkv), b, m, heads, hd);
            assert!(crate::compare::max_abs_diff(&plain, &want).unwrap().max > 1e-3, "b{b} m{m} {heads}x{hd}: qk-norm changed nothing");
        }
    }
}

#[test]
fn pooling_one_shared_query_matches_the_reference() {
    let mut rng = Rng::new(105);
    let c = shared_context();
    for (b, m, heads, hd) in SHAPES {
        let d = heads * hd;
        let (q, kv) = (rng.vec(d, 2.0), rng.vec(b * m * 2 * d, 1.5));
        let (qs, ks) = (rng.vec(hd, 1.0).into_iter().map(|v| 1.0 + v).collect::<Vec<f32>>(), rng.vec(hd, 2.0));
        let scales = upload(&c, &[qs.clone(), ks.clone()].concat());
        let (qb, kvb, ob) = (upload(&c, &q), upload(&c, &kv), upload(&c, &vec![0.0; b * d]));
        let split = |p: usize| -> Vec<f64> { to_f64(&kv).chunks(2 * d).flat_map(|r| r[p * d..(p + 1) * d].to_vec()).collect() };
        let (k, v) = (split(0), split(1));
        for norm in [None, Some(QkNorm { scales: &scales, eps: 1e-6 })] {
            let got = run_and_read(&c, &[&pool_op(&c, &qb, &kvb, &ob, b, m, heads, hd, norm).unwrap()], &ob, b * d);
            let reference = norm.map(|_| QkNormRef { query: &qs, key: &ks, eps: 1e-6 });
            let want = attend(Queries::Shared(&to_f64(&q), 1), &k, &v, b, m, heads, hd, reference);
            let what = format!("pooling b{b} m{m} {heads}x{hd} qk-norm {}", norm.is_some());
            assert_close(&what, &got, &want, 8e-6 * (1.0 + hd as f64).sqrt());
        }
    }
}
