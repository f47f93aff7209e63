//! GELU and its derivative against f64: the derivative against central differences of the f64
//! GELU, the kernels against both, and the forward against the GEMM epilogue bit for bit.

use super::reference::{gelu_backward, gelu_grad};
use super::{backward_op, op};
use crate::config::Gelu;
use crate::kernels::gemm::reference::gelu;
use crate::kernels::gemm::{Activation, Matmul};
use crate::random::Rng;
use crate::testing::{assert_bits, assert_close, run_and_read, run_and_read_f32, shared_context, to_f64, upload};

#[test]
fn the_f64_derivative_is_the_slope_of_the_f64_gelu() {
    for kind in [Gelu::Tanh, Gelu::Erf] {
        for i in -80..=80 {
            let x = i as f64 / 10.0 + 0.013;
            let h = 1e-5;
            let fd = (gelu(x + h, kind) - gelu(x - h, kind)) / (2.0 * h);
            assert!((fd - gelu_grad(x, kind)).abs() < 1e-8, "{kind:?} at {x}: {fd} vs {}", gelu_grad(x, kind));
        }
    }
}

#[test]
fn forward_and_backward_match_the_reference() {
    let mut rng = Rng::new(301);
    let c = shared_context();
    for kind in [Gelu::Tanh, Gelu::Erf] {
        for n in [1, 63, 65, 1000] {
            let x: Vec<f32> = rng.vec(n, 6.0);
            let dy = rng.vec(n, 2.0);
            let (xb, yb) = (upload(&c, &x), upload(&c, &vec![0.0; n]));
            let got = run_and_read(&c, &[&op(&c, &xb, &yb, n, kind).unwrap()], &yb, n);
            let want: Vec<f64> = x.iter().map(|&v| gelu(v as f64, kind)).collect();
            // erf to 1.5e-7 (Abramowitz & Stegun) times |x| ≤ 6, then f32 rounding.
            assert_close(&format!("gelu {kind:?} n{n}"), &got, &want, 2e-6);
            let gb = upload(&c, &dy);
            let got = run_and_read(&c, &[&backward_op(&c, &xb, &gb, n, kind).unwrap()], &gb, n);
            assert_close(&format!("gelu backward {kind:?} n{n}"), &got, &gelu_backward(&to_f64(&x), &to_f64(&dy), kind), 4e-6);
        }
    }
}

#[test]
fn the_kernel_gives_the_bits_of_the_gemm_switches() {
    // An identity GEMM with the GELU epilogue: 1·x rounds to x, so the epilogue sees x itself.
    let mut rng = Rng::new(302);
    let c = shared_context();
    let n = 97;
    let x = rng.vec(n, 5.0);
    for kind in [Gelu::Tanh, Gelu::Erf] {
        let (xb, ob, yb) = (upload(&c, &x), upload(&c, &[1.0]), upload(&c, &vec![0.0; n]));
        let mm = Matmul { activation: Activation::Gelu(kind), ..Matmul::new(n, 1, 1) };
        let fused = run_and_read_f32(&c, &[&mm.op(&c, &xb, &ob, None, &yb).unwrap()], &yb, n);
        let own = run_and_read_f32(&c, &[&op(&c, &xb, &yb, n, kind).unwrap()], &yb, n);
        assert_bits(&format!("gelu {kind:?}"), &own, &fused);
    }
}
