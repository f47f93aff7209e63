//! The router's slot parameters: f64 gradients against central differences, the kernels against f64.

use super::reference::{router_scale, router_scale_backward};
use super::{backward_op, op};
use crate::kernels::column_sum::ColumnSum;
use crate::random::Rng;
use crate::testing::{assert_close, f32_tol, run_and_read, shared_context, to_f64, upload};

#[test]
fn the_f64_gradients_are_the_slopes() {
    let mut rng = Rng::new(320);
    let (d, s) = (5, 3);
    let mu = to_f64(&rng.vec(d * s, 1.0));
    let w = to_f64(&rng.vec(d * s, 1.0));
    for normalize in [true, false] {
        let f = |mu: &[f64], scale: f64| router_scale(mu, scale, d, s, normalize).1.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>();
        let (d_mu, d_scale) = router_scale_backward(&mu, 1.7, &w, d, s, normalize);
        let h = 1e-6;
        assert!(((f(&mu, 1.7 + h) - f(&mu, 1.7 - h)) / (2.0 * h) - d_scale).abs() < 1e-8);
        for i in 0..mu.len() {
            let (mut up, mut down) = (mu.clone(), mu.clone());
            up[i] += h;
            down[i] -= h;
            let fd = (f(&up, 1.7) - f(&down, 1.7)) / (2.0 * h);
            assert!((fd - d_mu[i]).abs() < 1e-8, "mu {i}: {fd} vs {}", d_mu[i]);
        }
    }
}

#[test]
fn forward_and_backward_match_the_reference() {
    let mut rng = Rng::new(321);
    let c = shared_context();
    for (d, s, normalize) in [(1, 1, true), (64, 16, true), (7, 67, true), (9, 5, false)] {
        let (mu, g) = (rng.vec(d * s, 1.0), rng.vec(d * s, 1.0));
        let scale = rng.uniform() * 3.0;
        let (mb, sb, gb) = (upload(&c, &mu), upload(&c, &[scale]), upload(&c, &g));
        let (hb, pb, dmb, partb, dsb) = (
            upload(&c, &vec![0.0; d * s]),
            upload(&c, &vec![0.0; d * s]),
            upload(&c, &vec![0.0; d * s]),
            upload(&c, &vec![0.0; s]),
            upload(&c, &[0.0]),
        );
        let (hat, scaled) = router_scale(&to_f64(&mu), scale as f64, d, s, normalize);
        let fwd = op(&c, &mb, &sb, &hb, &pb, d, s, normalize).unwrap();
        assert_close(&format!("Φ̂ {d}x{s}"), &run_and_read(&c, &[&fwd], &hb, d * s), &hat, f32_tol(d, 1.0));
        assert_close(&format!("Φs {d}x{s}"), &run_and_read(&c, &[&fwd], &pb, d * s), &scaled, f32_tol(d, 3.0));
        let bwd = backward_op(&c, &mb, &sb, &gb, &dmb, &partb, d, s, normalize).unwrap();
        let sum = ColumnSum::rows(s, 1).op(&c, &partb, &dsb).unwrap();
        let (d_mu, d_scale) = router_scale_backward(&to_f64(&mu), scale as f64, &to_f64(&g), d, s, normalize);
        let got = run_and_read(&c, &[&bwd, &sum], &dmb, d * s);
        let norm_max = mu.chunks(1).fold(0.0f64, |a, v| a.max(v[0].abs() as f64));
        let big = d_mu.iter().fold(1.0f64, |a, v| a.max(v.abs()));
        assert_close(&format!("d mu {d}x{s}"), &got, &d_mu, f32_tol(d, 4.0 * big.max(norm_max)));
        let got = run_and_read(&c, &[&bwd, &sum], &dsb, 1);
        assert_close(&format!("d scale {d}x{s}"), &got, &[d_scale], f32_tol(d * s, (d * s) as f64));
    }
}
