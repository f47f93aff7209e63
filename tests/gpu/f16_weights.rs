//! Expert kernels stored as f16: the error against the f64 reference (of the f32 weights), and
//! batch invariance, which must survive the change of storage.

use softmoe::layers::LayerOptions;
use softmoe::{Gelu, SoftMoe, Tensor};

use crate::common::{ctx, gpu_forward, random_input, random_layer, Rng};

/// Half-precision weights round each kernel value by up to 2⁻¹¹ relatively; an output of the two
/// Dense layers then moves by a few of those relative to its magnitude.
const F16_REL_TOL: f64 = 2.0 / 2048.0;

#[test]
fn f16_expert_weights_stay_within_the_stated_error() {
    let mut worst: f64 = 0.0;
    for (i, &(b, m, d, n, p, h)) in [(1, 49, 64, 8, 2, 128), (3, 17, 12, 5, 3, 20), (2, 196, 384, 16, 1, 1536)].iter().enumerate() {
        let mut rng = Rng::new(600 + i as u64);
        let w = random_layer(&mut rng, d, n, p, h, 5.0, Gelu::Tanh, true);
        let x = random_input(&mut rng, b, m, d);
        let layer = pollster::block_on(SoftMoe::with_options(ctx(), &w, LayerOptions { f16_weights: true })).unwrap();
        let got = gpu_forward(&layer, &x);
        let want = softmoe::reference::soft_moe_forward(&w, &x).unwrap();
        let y_max = want.y.iter().fold(0.0f64, |a, v| a.max(v.abs()));
        let err = got.y.iter().zip(&want.y).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        eprintln!("f16 weights, b={b} m={m} d={d} n={n} p={p} h={h}: max |Δy| {err:.2e} = {:.2e} of max |y|", err / y_max);
        assert!(err <= F16_REL_TOL * y_max, "case {i}: error {err:e} above {:e}", F16_REL_TOL * y_max);
        // The routing does not touch the expert weights: D and C are as exact as with f32.
        let werr = got.combine.iter().zip(&want.combine).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(werr < 1e-5, "case {i}: combine weights moved by {werr:e}");
        worst = worst.max(err / y_max);
    }
    eprintln!("f16 weights: worst error {worst:.2e} of max |y| (tolerance {F16_REL_TOL:.2e})");
}

#[test]
fn f16_expert_weights_keep_batch_invariance() {
    let mut rng = Rng::new(610);
    let w = random_layer(&mut rng, 16, 6, 2, 32, 8.0, Gelu::Erf, true);
    let layer = pollster::block_on(SoftMoe::with_options(ctx(), &w, LayerOptions { f16_weights: true })).unwrap();
    let x = random_input(&mut rng, 9, 11, 16);
    let all = gpu_forward(&layer, &x);
    for i in [0, 4, 8] {
        let one = Tensor::new(vec![1, 11, 16], x.data[i * 176..(i + 1) * 176].to_vec()).unwrap();
        assert_eq!(gpu_forward(&layer, &one).y, all.y[i * 176..(i + 1) * 176], "example {i}");
    }
}
