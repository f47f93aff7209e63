//! SPEC §1's invariants, each on the GPU and on the CPU reference.

use softmoe::{Gelu, SoftMoeWeights, Tensor};

use crate::common::{assert_close, f32_tol, max_abs, random_input, random_layer, Backend, Out, Rng, BACKENDS};

/// Two f32 runs of one backend that differ only in summation order: twice one run's error.
fn reorder_tol(k: usize, y: &[f64]) -> f64 {
    2.0 * f32_tol(k, max_abs("y", y))
}

fn layer(seed: u64, d: usize, n: usize, p: usize, h: usize, scale: f32) -> SoftMoeWeights {
    random_layer(&mut Rng::new(seed), d, n, p, h, scale, Gelu::Tanh, true)
}

/// 1/k as the backend computes it: f32 division on the GPU, f64 on the CPU.
fn exact_reciprocal(be: Backend, k: usize) -> f64 {
    match be {
        Backend::Gpu => (1.0f32 / k as f32) as f64,
        Backend::Cpu => 1.0 / k as f64,
    }
}

fn rows_identical(y: &[f64], d: usize) -> bool {
    y.chunks(d).all(|r| r == &y[..d])
}

#[test]
fn dispatch_columns_and_combine_rows_sum_to_one() {
    let (b, m, d, n, p) = (3, 23, 12, 5, 3);
    let w = layer(10, d, n, p, 9, 8.0);
    let x = random_input(&mut Rng::new(11), b, m, d);
    let s = n * p;
    for be in BACKENDS {
        let out = be.forward(&w, &x);
        for e in 0..b {
            for j in 0..s {
                let col: f64 = (0..m).map(|i| out.dispatch[(e * m + i) * s + j]).sum();
                assert!((col - 1.0).abs() < 1e-5, "{be:?}: D column {j} of example {e} sums to {col}");
            }
        }
        for row in out.combine.chunks(s) {
            let sum: f64 = row.iter().sum();
            assert!((sum - 1.0).abs() < 1e-5, "{be:?}: C row sums to {sum}");
        }
        for v in out.dispatch.iter().chain(&out.combine) {
            assert!(*v > 0.0 && *v < 1.0, "{be:?}: weight {v} outside (0, 1)");
        }
    }
}

#[test]
fn zero_scale_gives_uniform_weights_and_identical_rows() {
    let (m, d, n, p) = (13, 6, 3, 2);
    let w = layer(20, d, n, p, 5, 0.0);
    let x = random_input(&mut Rng::new(21), 2, m, d);
    for be in BACKENDS {
        let out = be.forward(&w, &x);
        let (dm, cs) = (exact_reciprocal(be, m), exact_reciprocal(be, n * p));
        assert!(out.dispatch.iter().all(|&v| v == dm), "{be:?}: D is not exactly 1/m");
        assert!(out.combine.iter().all(|&v| v == cs), "{be:?}: C is not exactly 1/(n·p)");
        for e in out.y.chunks(m * d) {
            assert!(rows_identical(e, d), "{be:?}: output rows differ with scale = 0");
        }
    }
}

#[test]
fn one_expert_one_slot_gives_combine_one_and_identical_rows() {
    let (m, d) = (9, 7);
    let w = layer(30, d, 1, 1, 11, 5.0);
    let x = random_input(&mut Rng::new(31), 2, m, d);
    for be in BACKENDS {
        let out = be.forward(&w, &x);
        assert!(out.combine.iter().all(|&v| v == 1.0), "{be:?}: C is not exactly 1");
        for e in out.y.chunks(m * d) {
            assert!(rows_identical(e, d), "{be:?}: output rows differ with n = p = 1");
        }
    }
}

#[test]
fn permuting_tokens_permutes_the_output() {
    let (m, d) = (19, 10);
    let w = layer(40, d, 4, 2, 13, 6.0);
    let x = random_input(&mut Rng::new(41), 1, m, d);
    let perm: Vec<usize> = (0..m).map(|i| (i * 7 + 3) % m).collect();
    let xp = Tensor::new(x.shape.clone(), perm.iter().flat_map(|&i| x.data[i * d..(i + 1) * d].to_vec()).collect()).unwrap();
    for be in BACKENDS {
        let (a, b) = (be.forward(&w, &x), be.forward(&w, &xp));
        let permuted: Vec<f64> = perm.iter().flat_map(|&i| a.y[i * d..(i + 1) * d].to_vec()).collect();
        assert_close(&format!("{be:?} permuted y"), &b.y, &permuted, reorder_tol(m, &a.y));
    }
}

#[test]
fn relabelling_experts_leaves_the_output_unchanged() {
    let (m, d, n, p, h) = (15, 8, 4, 3, 6);
    let w = layer(50, d, n, p, h, 4.0);
    let x = random_input(&mut Rng::new(51), 2, m, d);
    let relabel = [2usize, 0, 3, 1]; // new expert e is old expert relabel[e]
    let mut v = w.clone();
    for (e, &old) in relabel.iter().enumerate() {
        for k in 0..d {
            for s in 0..p {
                v.mu[(k * n + e) * p + s] = w.mu[(k * n + old) * p + s];
            }
        }
        v.w0[e * d * h..(e + 1) * d * h].copy_from_slice(&w.w0[old * d * h..(old + 1) * d * h]);
        v.b0[e * h..(e + 1) * h].copy_from_slice(&w.b0[old * h..(old + 1) * h]);
        v.w1[e * h * d..(e + 1) * h * d].copy_from_slice(&w.w1[old * h * d..(old + 1) * h * d]);
        v.b1[e * d..(e + 1) * d].copy_from_slice(&w.b1[old * d..(old + 1) * d]);
    }
    for be in BACKENDS {
        let base = be.forward(&w, &x).y;
        assert_close(&format!("{be:?} relabelled y"), &be.forward(&v, &x).y, &base, reorder_tol(m, &base));
    }
}

#[test]
fn scaling_a_token_or_a_slot_parameter_leaves_the_weights_unchanged() {
    let (m, d, n, p) = (11, 9, 3, 2);
    let w = layer(60, d, n, p, 7, 7.0);
    let x = random_input(&mut Rng::new(61), 1, m, d);
    let mut xs = x.clone();
    xs.data[4 * d..5 * d].iter_mut().for_each(|v| *v *= 3.5);
    let mut ws = w.clone();
    for k in 0..d {
        ws.mu[k * n * p + 3] *= 4.0; // column j = 3
    }
    for be in BACKENDS {
        let base: Out = be.forward(&w, &x);
        for (what, out) in [("token", be.forward(&w, &xs)), ("slot", be.forward(&ws, &x))] {
            // Exact but for the 1e-6 inside the sqrt and the f32 rounding of the rescaled norm and
            // logits: two runs' worth of the f32 bound on weights of size at most 1.
            let tol = 2.0 * f32_tol(d, 1.0);
            assert_close(&format!("{be:?}: D after scaling a {what}"), &out.dispatch, &base.dispatch, tol);
            assert_close(&format!("{be:?}: C after scaling a {what}"), &out.combine, &base.combine, tol);
        }
    }
}

#[test]
fn a_zero_token_combines_uniformly() {
    let (m, d, n, p) = (8, 5, 3, 3);
    let w = layer(70, d, n, p, 4, 9.0);
    let mut x = random_input(&mut Rng::new(71), 1, m, d);
    x.data[2 * d..3 * d].fill(0.0);
    let s = n * p;
    for be in BACKENDS {
        let out = be.forward(&w, &x);
        let want = exact_reciprocal(be, s);
        assert!(out.combine[2 * s..3 * s].iter().all(|&v| v == want), "{be:?}: zero token's C is not 1/(n·p)");
    }
}
