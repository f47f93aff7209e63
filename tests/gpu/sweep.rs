//! A seeded random sweep of shapes and options against the f64 reference.
//!
//! Tolerance, per output: |y_gpu − y_ref| ≤ ε·(1 + |scale|)·(√K + 8)·max(1, ‖y_ref‖∞), ε = 2⁻²³, with K the
//! longest accumulation (d, m, n·p or h). Why: each f32 dot product of length K carries a rounding
//! error that grows like √K ulps on random data; the logits' error is then multiplied by up to
//! |scale| inside the exponentials of both softmaxes, which turns it into a relative error of D and C,
//! and so of y relative to its magnitude.

use softmoe::Gelu;

use crate::common::{ctx, gpu_forward, max_abs, max_abs_diff, random_input, random_layer, Rng};

/// Reference FLOPs budget per case, so the sweep stays quick on a software GPU.
const MAX_FLOPS: f64 = 4e8;

struct Case {
    b: usize,
    m: usize,
    d: usize,
    n: usize,
    p: usize,
    h: usize,
    scale: f32,
    gelu: Gelu,
    normalize: bool,
}

fn flops(c: &Case) -> f64 {
    let s = (c.n * c.p) as f64;
    let (b, m, d, h) = (c.b as f64, c.m as f64, c.d as f64, c.h as f64);
    b * (2.0 * m * d * s * 3.0 + 4.0 * s * d * h)
}

/// Log-uniform integer in [lo, hi], so small and large sizes are both common.
fn log_range(rng: &mut Rng, lo: usize, hi: usize) -> usize {
    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    (((lo as f64).ln() + u * ((hi as f64 + 1.0).ln() - (lo as f64).ln())).exp() as usize).clamp(lo, hi)
}

fn cases() -> Vec<Case> {
    let mut rng = Rng::new(2024);
    let mut out = vec![
        // The extremes of each range, with the other sizes small enough to stay in budget.
        Case { b: 1, m: 300, d: 384, n: 4, p: 1, h: 32, scale: 10.0, gelu: Gelu::Tanh, normalize: true },
        Case { b: 2, m: 5, d: 16, n: 256, p: 1, h: 8, scale: 1.0, gelu: Gelu::Erf, normalize: true },
        Case { b: 1, m: 49, d: 64, n: 2, p: 4, h: 1536, scale: 3.0, gelu: Gelu::Tanh, normalize: false },
        Case { b: 8, m: 1, d: 33, n: 3, p: 2, h: 17, scale: 100.0, gelu: Gelu::Tanh, normalize: true },
        Case { b: 3, m: 65, d: 7, n: 5, p: 3, h: 9, scale: 0.0, gelu: Gelu::Erf, normalize: true },
    ];
    while out.len() < 40 {
        let c = Case {
            b: rng.range(1, 8),
            m: log_range(&mut rng, 1, 300),
            d: log_range(&mut rng, 1, 384),
            n: log_range(&mut rng, 1, 256),
            p: rng.range(1, 4),
            h: log_range(&mut rng, 1, 1536),
            scale: if rng.range(0, 9) == 0 { 0.0 } else { (rng.uniform().abs() * 100.0).max(0.01) },
            gelu: if rng.range(0, 1) == 0 { Gelu::Tanh } else { Gelu::Erf },
            normalize: rng.range(0, 4) != 0,
        };
        if flops(&c) <= MAX_FLOPS {
            out.push(c);
        }
    }
    out
}

/// Runs one case against the f64 reference; returns its error as a share of the tolerance.
fn check(rng: &mut Rng, label: &str, c: &Case) -> f64 {
    let w = random_layer(rng, c.d, c.n, c.p, c.h, c.scale, c.gelu, c.normalize);
    let x = random_input(rng, c.b, c.m, c.d);
    let layer = pollster::block_on(softmoe::SoftMoe::new(ctx(), &w)).unwrap();
    let got = gpu_forward(&layer, &x);
    let want = softmoe::reference::soft_moe_forward(&w, &x).unwrap();
    let label = format!(
        "{label}: b={} m={} d={} n={} p={} h={} scale={} {:?} normalize={}",
        c.b, c.m, c.d, c.n, c.p, c.h, c.scale, c.gelu, c.normalize
    );
    let k = c.d.max(c.m).max(c.n * c.p).max(c.h) as f64;
    let y_max = max_abs(&label, &want.y).max(1.0);
    let tol = f32::EPSILON as f64 * (1.0 + c.scale.abs() as f64) * (k.sqrt() + 8.0) * y_max;
    let err = max_abs_diff(&format!("{label} y"), &got.y, &want.y);
    let werr = max_abs_diff(&format!("{label} D"), &got.dispatch, &want.dispatch).max(max_abs_diff(
        &format!("{label} C"),
        &got.combine,
        &want.combine,
    ));
    eprintln!("{label}: y error {err:.2e} (tol {tol:.2e}), weights error {werr:.2e}");
    assert!(err <= tol, "{label}: y error {err:e} > {tol:e}");
    assert!(werr <= tol, "{label}: D/C error {werr:e} > {tol:e}");
    err / tol
}

#[test]
fn random_shapes_match_the_f64_reference() {
    let mut rng = Rng::new(7);
    let worst = cases().iter().enumerate().map(|(i, c)| check(&mut rng, &format!("case {i}"), c)).fold(0.0, f64::max);
    eprintln!("worst error / tolerance: {worst:.3}");
}

#[test]
fn the_papers_vit_s16_layer_matches_the_f64_reference() {
    // The README's ViT-S/16 figure: 196 tokens, d = 384, 128 one-slot experts of h = 1536, batch 2
    // (outside the sweep's FLOP budget: 604 MB of expert weights, split across bindings).
    let c = Case { b: 2, m: 196, d: 384, n: 128, p: 1, h: 1536, scale: 1.0, gelu: Gelu::Tanh, normalize: true };
    let share = check(&mut Rng::new(16), "ViT-S/16", &c);
    eprintln!("ViT-S/16 layer: error / tolerance {share:.3}");
}
