//! Random small shapes, options and values: the GPU layer matches the f64 reference, or both refuse.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use softmoe::random::{random_input, random_layer, LayerShape, Rng};
use softmoe::{Gelu, GpuContext, SoftMoe};

fn ctx() -> Arc<GpuContext> {
    static CTX: OnceLock<Arc<GpuContext>> = OnceLock::new();
    CTX.get_or_init(|| pollster::block_on(GpuContext::new()).expect("the fuzzer needs a wgpu adapter")).clone()
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 16 {
        return;
    }
    let pick = |i: usize, lo: usize, hi: usize| lo + data[i] as usize % (hi - lo + 1);
    let (b, m, d, n, p, h) = (pick(0, 1, 4), pick(1, 1, 40), pick(2, 1, 24), pick(3, 1, 12), pick(4, 1, 4), pick(5, 1, 24));
    let scale = data[6] as f32 / 2.55; // 0 ..= 100
    let gelu = if data[7] & 1 == 0 { Gelu::Tanh } else { Gelu::Erf };
    let normalize = data[7] & 2 == 0;
    let seed = u64::from_le_bytes(data[8..16].try_into().expect("8 bytes"));
    let mut rng = Rng::new(seed);
    let w = random_layer(&mut rng, LayerShape { d, n, p, h, scale, gelu, normalize });
    let mut x = random_input(&mut rng, b, m, d);
    // The rest of the input overwrites values, zeros and extremes included.
    for (i, chunk) in data[16..].chunks(4).enumerate().take(x.data.len()) {
        if chunk.len() == 4 {
            let v = f32::from_le_bytes(chunk.try_into().expect("4 bytes"));
            x.data[i] = if v.is_finite() { v.clamp(-10.0, 10.0) } else { v };
        }
    }
    let want = softmoe::reference::soft_moe_forward(&w, &x);
    let layer = pollster::block_on(SoftMoe::new(ctx(), &w)).expect("valid random layer uploads");
    let got = pollster::block_on(layer.forward_with_maps(&x));
    match (got, want) {
        (Ok(g), Ok(r)) => {
            let y_max = r.y.iter().fold(1.0f64, |a, v| a.max(v.abs()));
            let k = d.max(m).max(n * p).max(h) as f64;
            // |L| ≤ scale when normalised; otherwise up to scale·‖x‖·‖φ‖.
            let norm = |v: &[f32]| v.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
            let x_max = x.data.chunks(d).map(norm).fold(0.0, f64::max);
            let mu_max = (0..n * p).map(|j| norm(&(0..d).map(|k| w.mu[k * n * p + j]).collect::<Vec<_>>())).fold(0.0, f64::max);
            let l_max = if normalize { scale as f64 } else { scale as f64 * x_max * mu_max };
            let tol = f32::EPSILON as f64 * (1.0 + l_max) * (k.sqrt() + 8.0) * y_max * 4.0;
            let err = g.y.data.iter().zip(&r.y).map(|(a, b)| (*a as f64 - b).abs()).fold(0.0, f64::max);
            assert!(err <= tol, "b={b} m={m} d={d} n={n} p={p} h={h} scale={scale}: error {err} > {tol}");
        }
        (Err(_), Err(_)) => {}
        (g, r) => panic!("GPU and reference disagree on accepting the input: gpu ok = {}, reference ok = {}", g.is_ok(), r.is_ok()),
    }
});
