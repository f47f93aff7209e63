//! SPEC §1 test vectors (computed with the official vmoe code), on every backend.

use softmoe::Gelu;

use crate::common::{assert_close, max_abs_diff, spec_medium, spec_small, BACKENDS};

/// SPEC prints vmoe's values to 7 decimals (±5e-8); f32 round-off on these O(1) values through
/// reductions of length ≤ 16 adds a few ε (≤ 1.1e-7 measured). 1e-6 keeps ~9× headroom, tighter
/// than SPEC's "about 1e-5".
const TOL: f64 = 1e-6;

#[test]
fn small_vector_matches_vmoe() {
    let want_d = [[0.4445793, 0.1482273], [0.1635518, 0.4029233], [0.3317016, 0.3006219], [0.0601674, 0.1482273]];
    let want_y = [[0.3004188, 0.3167834], [0.0344004, 0.2770616], [0.1674096, 0.2969225], [0.0344004, 0.2770616]];
    let (w, x) = spec_small(Gelu::Tanh);
    for be in BACKENDS {
        let out = be.forward(&w, &x);
        assert_close(&format!("{be:?} D"), &out.dispatch, &want_d.concat(), TOL);
        assert_close(&format!("{be:?} C row 0"), &out.combine[0..2], &[0.7310584, 0.2689416], TOL);
        assert_close(&format!("{be:?} C row 2"), &out.combine[4..6], &[0.5, 0.5], TOL);
        assert_close(&format!("{be:?} Y"), &out.y, &want_y.concat(), TOL);
    }
}

#[test]
fn small_vector_tells_tanh_gelu_from_erf_gelu() {
    let want_y = [0.3004188, 0.3167834, 0.0344004, 0.2770616, 0.1674096, 0.2969225, 0.0344004, 0.2770616];
    let (w, x) = spec_small(Gelu::Erf);
    for be in BACKENDS {
        let out = be.forward(&w, &x);
        let moved = max_abs_diff(&format!("{be:?} erf Y"), &out.y, &want_y);
        // SPEC: erf GELU moves Y by up to 5.4e-5 from the tanh vector.
        assert!(moved > 3e-5 && moved < 7e-5, "{be:?}: erf GELU moved Y by {moved:e}");
    }
}

#[test]
fn medium_vector_matches_vmoe() {
    let want_row = [0.027438, 0.020500, -0.001984, -0.023410, -0.027964, -0.012589, 0.010712, 0.023965];
    let (w, x) = spec_medium();
    for be in BACKENDS {
        let out = be.forward(&w, &x);
        // The row is printed to 6 decimals, so it is checked to their half unit.
        assert_close(&format!("{be:?} Y[0,0,:]"), &out.y[..8], &want_row, 5e-7 + TOL);
        let sum: f64 = out.y.iter().sum();
        let sum_abs: f64 = out.y.iter().map(|v| v.abs()).sum();
        assert!((sum - 0.5160407).abs() <= 1e-6, "{be:?}: sum(Y) = {sum}");
        assert!((sum_abs - 4.7418078).abs() <= 1e-6, "{be:?}: sum(|Y|) = {sum_abs}");
    }
}
