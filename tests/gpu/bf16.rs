//! `dispatch_bfloat16`: vmoe's `Bfloat16Dispatcher` (X rounded to bfloat16 before X̃ = DᵀX, Ỹ before
//! Y = CỸ; D, C and the arithmetic f32) on the GPU against the f64 reference, which rounds at the
//! same two points.
//!
//! The GPU rounds f32 values, the reference f64 ones: an expert output that lies within f32
//! round-off of a half-way point between two bf16 values may round up on one side and down on the
//! other. The comparisons find every such value in the reference and allow its one-step flip,
//! weighted as it enters the output; everything else must agree to f32 round-off.

use softmoe::reference::{expert, expert_mlp, round_bf16_f64, slot_inputs, soft_moe_forward, sparse_moe_f64};
use softmoe::routing::Router;
use softmoe::{Gelu, SoftMoe, SoftMoeWeights, SparseMoe, SparseMoeWeights, Tensor};

use crate::common::{assert_bits, ctx, f32_tol, gpu_forward, max_abs, max_abs_diff, random_input, random_layer, to_f64, Rng};

/// One bf16 step at `v`'s rounding when `v` lies within `rel`·|v| of a rounding boundary (so that
/// f32 round-off may round it the other way), else 0.
fn flip_step(v: f64, rel: f64) -> f64 {
    let r = round_bf16_f64(v);
    if r == 0.0 {
        return 0.0;
    }
    let ulp = 2f64.powf(r.abs().log2().floor() - 7.0);
    if ulp / 2.0 - (v - r).abs() <= rel * v.abs() {
        ulp
    } else {
        0.0
    }
}

/// Relative f32 round-off of the experts' outputs on the GPU, with a wide margin.
const NEAR_TIE: f64 = 1e-5;

/// Every element of `got` within `base + allowance[i]` of `want`; the message names the worst.
fn assert_within_flips(what: &str, got: &[f32], want: &[f64], base: f64, allowance: &[f64]) {
    assert_eq!((got.len(), want.len()), (allowance.len(), allowance.len()), "{what}: lengths");
    let (mut worst, mut at) = (0.0f64, 0);
    for i in 0..got.len() {
        let excess = (got[i] as f64 - want[i]).abs() - base - allowance[i];
        if excess > worst || i == 0 {
            (worst, at) = (excess, i);
        }
    }
    let flips = allowance.iter().filter(|&&a| a > 0.0).count();
    eprintln!("{what}: worst excess over the tolerance {worst:.2e} at {at} (base {base:.2e}, {flips} outputs near a bf16 tie)");
    assert!(worst <= 0.0, "{what}: element {at}: got {} want {}, beyond {base:e} + {:e}", got[at], want[at], allowance[at]);
}

fn bf16(w: &SoftMoeWeights) -> SoftMoeWeights {
    SoftMoeWeights { dispatch_bfloat16: true, ..w.clone() }
}

#[test]
fn the_soft_moe_layer_rounds_where_the_bfloat16_dispatcher_does() {
    let mut rng = Rng::new(900);
    for (b, m, d, n, p, h) in [(2, 16, 8, 4, 2, 16), (3, 17, 13, 3, 3, 21), (1, 50, 24, 5, 1, 40), (2, 7, 36, 8, 2, 20)] {
        let w32 = random_layer(&mut rng, d, n, p, h, 3.0, Gelu::Tanh, true);
        let w = bf16(&w32);
        let x = random_input(&mut rng, b, m, d);
        let want = soft_moe_forward(&w, &x).unwrap();
        let got = gpu_forward(&pollster::block_on(SoftMoe::new(ctx(), &w)).unwrap(), &x);
        let s = n * p;
        // The experts' outputs near a tie, per example, as they enter Y = CỸ.
        let mut allowance = Vec::with_capacity(b * m * d);
        for e in 0..b {
            let dm = &want.dispatch[e * m * s..(e + 1) * m * s];
            let cm = &want.combine[e * m * s..(e + 1) * m * s];
            let xe: Vec<f64> = x.data[e * m * d..(e + 1) * m * d].iter().map(|&v| round_bf16_f64(v as f64)).collect();
            let ys = expert_mlp(&slot_inputs(dm, &xe, m, s, d), &w);
            for i in 0..m {
                for c in 0..d {
                    allowance.push((0..s).map(|j| cm[i * s + j] * flip_step(ys[j * d + c], NEAR_TIE)).sum::<f64>());
                }
            }
        }
        let base = f32_tol(m.max(h).max(d), max_abs("y", &want.y).max(1.0));
        let label = format!("b{b} m{m} d{d} n{n} p{p} h{h}");
        let got_y: Vec<f32> = got.y.iter().map(|&v| v as f32).collect();
        assert_within_flips(&format!("{label}: y with dispatch_bfloat16"), &got_y, &want.y, base, &allowance);
        // The router is f32 in both modes: D and C do not move.
        let plain = gpu_forward(&pollster::block_on(SoftMoe::new(ctx(), &w32)).unwrap(), &x);
        assert_bits(&format!("{label}: dispatch in both modes"), &got.dispatch, &plain.dispatch);
        assert_bits(&format!("{label}: combine in both modes"), &got.combine, &plain.combine);
        // The rounding shows: both sides moved from the f32 math by far more than f32 round-off.
        let f32_ref = soft_moe_forward(&w32, &x).unwrap().y;
        let moved = max_abs_diff("y bf16 against f32", &got.y, &plain.y);
        assert!(
            moved > 30.0 * base && max_abs_diff("reference bf16 against f32", &want.y, &f32_ref) > 30.0 * base,
            "{label}: moved {moved:e}"
        );
    }
}

#[test]
fn the_experts_outputs_are_rounded_before_the_combine() {
    // With Dense_1's kernel zero each expert's output is its bias, exact in f32 and f64 alike, so
    // no rounding can flip: Y = C·bf16(b1) exactly as the reference has it, and not C·b1.
    let mut rng = Rng::new(901);
    let (b, m, d, n, p, h) = (2, 19, 10, 3, 2, 7);
    let mut w = bf16(&random_layer(&mut rng, d, n, p, h, 4.0, Gelu::Tanh, true));
    w.w1.iter_mut().for_each(|v| *v = 0.0);
    let x = random_input(&mut rng, b, m, d);
    let want = soft_moe_forward(&w, &x).unwrap();
    let got = gpu_forward(&pollster::block_on(SoftMoe::new(ctx(), &w)).unwrap(), &x);
    let tol = f32_tol(n * p, max_abs("y", &want.y));
    crate::common::assert_close("y = C·bf16(b1)", &got.y, &want.y, tol);
    let unrounded = soft_moe_forward(&SoftMoeWeights { dispatch_bfloat16: false, ..w.clone() }, &x).unwrap().y;
    assert!(max_abs_diff("rounded against not", &want.y, &unrounded) > 100.0 * tol);
}

#[test]
fn the_sparse_layer_rounds_where_the_bfloat16_dispatcher_does() {
    let mut rng = Rng::new(902);
    for router in [Router::tokens_choice(2, 1.0), Router::ExpertsChoice { capacity_factor: 1.5, capacity_multiple_of: 1 }] {
        let (b, m, d, n, h) = (4, 13, 12, 4, 18);
        let w = SparseMoeWeights {
            d,
            n,
            h,
            router,
            group_size: 2,
            wr: rng.vec(d * n, 1.0),
            w0: rng.vec(n * d * h, 0.5),
            b0: rng.vec(n * h, 0.1),
            w1: rng.vec(n * h * d, 0.5),
            b1: rng.vec(n * d, 0.1),
            gelu: Gelu::Tanh,
            dispatch_bfloat16: true,
        };
        let x = random_input(&mut rng, b, m, d);
        let xf = to_f64(&x.data);
        let want = sparse_moe_f64(&w, &xf, b, m);
        let got = pollster::block_on(pollster::block_on(SparseMoe::new(ctx(), &w)).unwrap().forward(&x)).unwrap();
        let slots: Vec<Option<u32>> = want.slots.iter().map(|s| s.map(|v| v as u32)).collect();
        assert_eq!(got.slots, slots, "{router:?}: routing (on the f32 tokens in both modes)");
        let mut allowance = vec![0.0; b * m * d];
        for t in 0..b * m {
            let xt: Vec<f64> = xf[t * d..(t + 1) * d].iter().map(|&v| round_bf16_f64(v)).collect();
            for e in (0..n).filter(|&e| want.slots[t * n + e].is_some()) {
                for (c, v) in expert(&w, e, &xt).into_iter().enumerate() {
                    allowance[t * d + c] += want.gates[t * n + e] * flip_step(v, NEAR_TIE);
                }
            }
        }
        let base = f32_tol(h.max(d), max_abs("y", &want.y).max(1.0));
        assert_within_flips(&format!("{router:?}: sparse y with dispatch_bfloat16"), &got.y.data, &want.y, base, &allowance);
        let plain = sparse_moe_f64(&SparseMoeWeights { dispatch_bfloat16: false, ..w.clone() }, &xf, b, m).y;
        assert!(max_abs_diff("sparse bf16 against f32", &want.y, &plain) > 30.0 * base, "{router:?}");
    }
}

#[test]
fn bfloat16_models_are_bit_identical_alone_and_in_a_batch() {
    use softmoe::model::Vit;
    use softmoe::random::random_vit;
    let mut c = crate::common::vit_config(12, 1, 3, 15, 2, 3, &[0, 1], 3, 2);
    c.dispatch_bfloat16 = true;
    c.classifier = softmoe::Pooling::Token;
    let mut rng = Rng::new(903);
    let w = random_vit(&mut rng, &c);
    let vit = pollster::block_on(Vit::new(ctx(), &w)).unwrap();
    let per = 144;
    let batch = Tensor::new(vec![7, 12, 12], rng.vec(7 * per, 0.5).into_iter().map(|v| v + 0.5).collect()).unwrap();
    let all = pollster::block_on(vit.classify(&batch)).unwrap();
    for j in [0, 6] {
        let one = Tensor::new(vec![1, 12, 12], batch.data[j * per..(j + 1) * per].to_vec()).unwrap();
        let alone = pollster::block_on(vit.classify(&one)).unwrap();
        assert_bits(&format!("bf16 model image {j}"), &alone.logits.data, &all.logits.data[j * 10..(j + 1) * 10]);
    }
    // And the option reaches every Soft MoE block of the model.
    let mut plain = w.clone();
    plain.config.dispatch_bfloat16 = false;
    for blk in &mut plain.blocks {
        if let softmoe::weights::BlockMlp::SoftMoe(l) = &mut blk.mlp {
            l.dispatch_bfloat16 = false;
        }
    }
    let f32_logits = pollster::block_on(pollster::block_on(Vit::new(ctx(), &plain)).unwrap().classify(&batch)).unwrap().logits.data;
    assert!(max_abs_diff("bf16 model against f32", &all.logits.data, &f32_logits) > 1e-5);
}
