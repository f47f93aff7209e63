//! Random small shapes, options and values: the GPU layer matches the f64 reference, or both refuse.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use softmoe::random::{random_input, random_layer, LayerShape, Rng};
use softmoe::{compare, Gelu, GpuContext, SoftMoe};

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
            let what = format!("b={b} m={m} d={d} n={n} p={p} h={h} scale={scale} {gelu:?} normalize={normalize}");
            let eps = f32::EPSILON as f64;
            let (s, dmaps, cmaps) = (n * p, g.dispatch.as_ref().expect("maps"), g.combine.as_ref().expect("maps"));
            // Finite everywhere, and the routing weights are distributions whatever the conditioning.
            let y_max = compare::max_abs(&r.y).expect("reference y is finite for finite input").max(1e-30);
            compare::max_abs(&g.y.data).unwrap_or_else(|e| panic!("{what}: GPU y: {e}"));
            for (name, w, len, stride, count) in [("D column", &dmaps.data, m, s, s), ("C row", &cmaps.data, s, 1, m)] {
                for e in 0..b {
                    for j in 0..count {
                        let idx = |i: usize| if stride == 1 { (e * m + j) * s + i } else { (e * m + i) * s + j };
                        let sum: f64 = (0..len).map(|i| w[idx(i)] as f64).sum();
                        assert!((sum - 1.0).abs() <= eps * (len as f64 + 8.0), "{what}: {name} {j} of example {e} sums to {sum}");
                    }
                }
            }
            // A logit is a length-d f32 dot product: absolute error up to ε·(√d + 8)·|scale|·‖x‖·‖φ‖
            // (‖x̂‖ = ‖φ̂‖ = 1 when normalised). Both softmaxes turn it into a relative error of up to
            // 2·δL of D and of C, which y = C·f(DᵀX) carries relative to its size; the GEMMs add
            // ε·(√K + 8) of their own (tests/gpu/sweep.rs).
            let norm = |v: &[f32]| v.iter().map(|a| (*a as f64).powi(2)).sum::<f64>().sqrt();
            let x_max = x.data.chunks(d).map(norm).fold(0.0, f64::max);
            let mu_max = (0..s).map(|j| norm(&(0..d).map(|k| w.mu[k * s + j]).collect::<Vec<_>>())).fold(0.0, f64::max);
            let l_bound = scale as f64 * if normalize { 1.0 } else { x_max * mu_max };
            let dl = eps * ((d as f64).sqrt() + 8.0) * l_bound;
            let k = d.max(m).max(s).max(h) as f64;
            let tol = y_max.max(1.0) * (eps * (k.sqrt() + 8.0) + 4.0 * dl);
            // Beyond 0.1 % the f32 problem itself is that ill-conditioned (logits in the thousands):
            // no f32 kernel can match the f64 value, so only the invariants above are checked.
            if tol <= 1e-3 * y_max.max(1.0) {
                let diff = compare::max_abs_diff(&g.y.data, &r.y).unwrap_or_else(|e| panic!("{what}: y: {e}"));
                diff.within(&format!("{what}: y"), tol).unwrap_or_else(|e| panic!("{e}"));
            }
        }
        (Err(_), Err(_)) => {}
        (g, r) => panic!("GPU and reference disagree on accepting the input: gpu ok = {}, reference ok = {}", g.is_ok(), r.is_ok()),
    }
});
