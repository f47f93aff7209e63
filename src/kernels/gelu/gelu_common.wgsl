// GELU and its derivative, tanh approximation or erf, as the GEMM epilogue computes the function
// (both include gelu_functions.wgsl), so a training forward that
// applies GELU as its own kernel gives the bits of the inference forward's fused epilogue.

struct GeluParams {
    count: u32,
    // 1: tanh approximation, 2: erf.
    kind: u32,
}

@group(0) @binding(0) var<uniform> p: GeluParams;

const GELU_C: f32 = 0.7978845608028654;

fn gelu(x: f32) -> f32 {
    if (p.kind == 2u) {
        return gelu_erf(x);
    }
    return gelu_tanh(x);
}

// d GELU / dx. tanh: 0.5 (1 + t) + 0.5 x (1 − t²) c (1 + 3·0.044715 x²), t = tanh(c (x + 0.044715 x³));
// erf: Φ(x) + x φ(x).
fn gelu_grad(x: f32) -> f32 {
    if (p.kind == 2u) {
        let cdf = 0.5 * (1.0 + erf_approx(x * 0.7071067811865476));
        return cdf + x * 0.3989422804014327 * exp(-0.5 * x * x);
    }
    let u = clamp(GELU_C * (x + 0.044715 * x * x * x), -15.0, 15.0);
    let t = tanh(u);
    return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * GELU_C * (1.0 + 0.134145 * x * x);
}
