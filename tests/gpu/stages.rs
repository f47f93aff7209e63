//! The layers' GEMM stages (`softmoe::layers::stages`) on the GEMM engine against the f64 stage
//! references, and the layer's choice between fused and separate router kernels. Each kernel alone
//! is tested in its own folder (`src/kernels/<op>/tests.rs`).

use softmoe::layers::stages;
use softmoe::reference as r;
use softmoe::Gelu;

use crate::common::{assert_close, ctx, random_layer, run_and_read, to_f64, upload, Rng};

/// f32 kernels against f64: a few ulps times the accumulation length, on O(1) data.
fn tol(k: usize) -> f64 {
    1e-6 * (1.0 + (k as f64).sqrt())
}

#[test]
fn soft_moe_stages_match_their_references() {
    let mut rng = Rng::new(4);
    for (b, m, d, n, p, h) in [(1, 1, 1, 1, 1, 1), (2, 5, 3, 2, 3, 7), (3, 67, 33, 5, 2, 65), (1, 49, 64, 8, 2, 128)] {
        let s = n * p;
        let w = random_layer(&mut rng, d, n, p, h, 3.0, Gelu::Tanh, true);
        let x = rng.vec(b * m * d, 1.0);
        let c = ctx();

        // Logits over all rows of the batch at once.
        let mu = r::slot_params(&w);
        let mu32: Vec<f32> = mu.iter().map(|&v| v as f32).collect();
        let (xb, mub, lb) = (upload(&x), upload(&mu32), upload(&vec![0.0; b * m * s]));
        let got = run_and_read(&[&stages::logits(b * m, d, s, w.scale).op(&c, &xb, &mub, None, &lb).unwrap()], &lb, b * m * s);
        assert_close("logits", &got, &r::logits(&to_f64(&x), &mu, w.scale as f64, b * m, d, s), 3.0 * tol(d));

        // Slot inputs and combine, per example.
        let dmat = rng.vec(b * m * s, 1.0);
        let (db, xsb) = (upload(&dmat), upload(&vec![0.0; b * s * d]));
        let got = run_and_read(&[&stages::slot_inputs(b, m, s, d).op(&c, &db, &xb, None, &xsb).unwrap()], &xsb, b * s * d);
        let (xf, df) = (to_f64(&x), to_f64(&dmat));
        let want: Vec<f64> =
            (0..b).flat_map(|e| r::slot_inputs(&df[e * m * s..(e + 1) * m * s], &xf[e * m * d..(e + 1) * m * d], m, s, d)).collect();
        assert_close("slot inputs", &got, &want, tol(m));

        let ys = rng.vec(b * s * d, 1.0);
        let (ysb, yb) = (upload(&ys), upload(&vec![0.0; b * m * d]));
        let got = run_and_read(&[&stages::combine(b, m, s, d, false).op(&c, &db, &ysb, None, &yb).unwrap()], &yb, b * m * d);
        let ysf = to_f64(&ys);
        let want: Vec<f64> =
            (0..b).flat_map(|e| r::combine(&df[e * m * s..(e + 1) * m * s], &ysf[e * s * d..(e + 1) * s * d], m, s, d)).collect();
        assert_close("combine", &got, &want, tol(s));

        // Both expert Dense layers in sequence, slot j through expert j / p.
        for gelu in [Gelu::Tanh, Gelu::Erf] {
            let w = softmoe::SoftMoeWeights { gelu, ..w.clone() };
            let (hid, out) = (upload(&vec![0.0; b * s * h]), upload(&vec![0.0; b * s * d]));
            // Experts in two groups with their own weight buffers, as the layer splits them.
            let split = n / 2;
            let mut ops = Vec::new();
            let mut keep = Vec::new();
            for g in [0..split, split..n] {
                if g.is_empty() {
                    continue;
                }
                // The expert kernels as the layer stores them (column panels where the width allows).
                let (w0, b0) = (
                    upload(&stages::expert_kernel_layout(&w.w0[g.start * d * h..g.end * d * h], g.len(), d, h)),
                    upload(&w.b0[g.start * h..g.end * h]),
                );
                let (w1, b1) = (
                    upload(&stages::expert_kernel_layout(&w.w1[g.start * h * d..g.end * h * d], g.len(), h, d)),
                    upload(&w.b1[g.start * d..g.end * d]),
                );
                ops.push(stages::dense0(b, n, p, d, h, g.clone(), gelu).op(&c, &xsb, &w0, Some(&b0), &hid).unwrap());
                ops.push(stages::dense1(b, n, p, d, h, g).op(&c, &hid, &w1, Some(&b1), &out).unwrap());
                keep.push((w0, b0, w1, b1));
            }
            let xs_in = run_and_read(&[], &xsb, b * s * d);
            let got = run_and_read(&ops.iter().collect::<Vec<_>>(), &out, b * s * d);
            let want: Vec<f64> = (0..b).flat_map(|e| r::expert_mlp(&xs_in[e * s * d..(e + 1) * s * d], &w)).collect();
            assert_close(&format!("expert MLP {gelu:?}"), &got, &want, 2.0 * tol(d + h));
        }
    }
}

#[test]
fn layer_takes_the_separate_router_kernels_where_the_fused_ones_do_not_fit() {
    // 1030 slots: neither vec4 logits (normalisation apart) nor the fused softmax; 1028: vec4 logits
    // with normalisation, separate softmaxes; 12: both fused.
    let mut rng = Rng::new(8);
    for (n, p) in [(515, 2), (257, 4), (6, 2)] {
        let (b, m, d, h) = (2, 5, 6, 3);
        let w = random_layer(&mut rng, d, n, p, h, 4.0, Gelu::Tanh, true);
        let x = softmoe::Tensor::new(vec![b, m, d], rng.vec(b * m * d, 1.0)).unwrap();
        let got = crate::common::Backend::Gpu.forward(&w, &x);
        let want = crate::common::Backend::Cpu.forward(&w, &x);
        assert_close(&format!("D, {} slots", n * p), &got.dispatch, &want.dispatch, 1e-6);
        assert_close(&format!("C, {} slots", n * p), &got.combine, &want.combine, 1e-6);
        assert_close(&format!("y, {} slots", n * p), &got.y, &want.y, crate::common::f32_tol(n * p, crate::common::max_abs("y", &want.y)));
    }
}
