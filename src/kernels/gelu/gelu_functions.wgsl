// GELU as every kernel computes it (the GEMM epilogue, the GELU kernels, the fused slot experts),
// one definition so that a fused and an unfused forward give the same bits.

fn gelu_tanh(x: f32) -> f32 {
    // Clamped because some backends' tanh returns NaN for large arguments; tanh(±15) is ±1 in f32.
    let u = clamp(0.7978845608028654 * (x + 0.044715 * x * x * x), -15.0, 15.0);
    return 0.5 * x * (1.0 + tanh(u));
}

fn erf_approx(x: f32) -> f32 {
    // Abramowitz & Stegun 7.1.26: |error| < 1.5e-7, below f32 resolution of the GELU output.
    let z = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * z);
    let poly = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t;
    return sign(x) * (1.0 - poly * exp(-z * z));
}

fn gelu_erf(x: f32) -> f32 {
    return 0.5 * x * (1.0 + erf_approx(x * 0.7071067811865476));
}
