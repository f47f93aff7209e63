//! Layers of the soft-moe-pytorch variant (`SoftMoeVariant::SoftMoePytorch`) at odd shapes against
//! the f64 reference, and batch invariance.

use softmoe::reference::{self as r, soft_moe_forward};
use softmoe::{Gelu, SoftMoe, SoftMoeWeights, Tensor};

use crate::common::{assert_bits, assert_close, ctx, gpu_forward, max_abs, random_input, to_f64, Rng};

/// ε·(1 + L)·(√K + 8)·max(1, ‖y‖∞), tests/gpu/sweep.rs's bound, with the largest |logit| L of `x`
/// (the f64 reference's X'Φ') in place of |scale|: the logits' rounding enters both softmaxes
/// multiplied by their size.
fn tolerance(w: &SoftMoeWeights, x: &Tensor, y: &[f64]) -> f64 {
    let (m, d, s) = (x.shape[1], w.d, w.slots());
    let mu = r::slot_params(w);
    let logit = to_f64(&x.data)
        .chunks(m * d)
        .map(|xe| max_abs("logits", &r::logits(&r::router_tokens(w, xe, m), &mu, 1.0, m, d, s)))
        .fold(0.0, f64::max);
    let k = [d, m, s, w.h].into_iter().max().unwrap() as f64;
    softmoe::testing::EPS * (1.0 + logit) * (k.sqrt() + 8.0) * max_abs("reference y", y).max(1.0)
}

#[test]
fn random_soft_moe_pytorch_layers_match_the_reference_at_odd_shapes() {
    let mut rng = Rng::new(14);
    // n·p a multiple of 4 and not (the vmoe path's fused normalisation is never used here), one
    // token, one slot, widths that do not fill a workgroup.
    for (b, m, d, n, p, h) in
        [(1, 1, 1, 1, 1, 1), (3, 17, 8, 4, 2, 16), (2, 33, 13, 3, 3, 7), (2, 49, 64, 8, 2, 128), (1, 130, 65, 5, 1, 67)]
    {
        let w = softmoe::random::random_pytorch_layer(&mut rng, d, n, p, h);
        let x = random_input(&mut rng, b, m, d);
        let want = soft_moe_forward(&w, &x).unwrap();
        let got = gpu_forward(&pollster::block_on(SoftMoe::new(ctx(), &w)).unwrap(), &x);
        let what = format!("b={b} m={m} d={d} n={n} p={p} h={h}");
        assert_close(&format!("{what}: y"), &got.y, &want.y, tolerance(&w, &x, &want.y));
        assert_close(&format!("{what}: dispatch"), &got.dispatch, &want.dispatch, tolerance(&w, &x, &[1.0]));
        assert_close(&format!("{what}: combine"), &got.combine, &want.combine, tolerance(&w, &x, &[1.0]));
        assert_eq!(w.gelu, Gelu::Erf);
    }
}

#[test]
fn a_soft_moe_pytorch_example_is_bit_identical_alone_and_in_a_batch() {
    let (m, d) = (23, 12);
    let mut rng = Rng::new(15);
    let w = softmoe::random::random_pytorch_layer(&mut rng, d, 5, 2, 20);
    let layer = pollster::block_on(SoftMoe::new(ctx(), &w)).unwrap();
    let batch = random_input(&mut rng, 9, m, d);
    let target = 6;
    let alone = Tensor::new(vec![1, m, d], batch.data[target * m * d..(target + 1) * m * d].to_vec()).unwrap();
    let (a, all) = (gpu_forward(&layer, &alone), gpu_forward(&layer, &batch));
    assert_bits("y alone against inside a batch of 9", &a.y, &all.y[target * m * d..(target + 1) * m * d]);
    let s = w.slots();
    assert_bits("D alone against inside a batch of 9", &a.dispatch, &all.dispatch[target * m * s..(target + 1) * m * s]);
}
