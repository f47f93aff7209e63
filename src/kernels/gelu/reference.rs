//! GELU's derivative in f64 (GELU itself is `gemm::reference::gelu`).

use crate::config::Gelu;
use crate::kernels::gemm::reference::erf;

/// d GELU(x) / dx.
pub fn gelu_grad(x: f64, kind: Gelu) -> f64 {
    match kind {
        Gelu::Tanh => {
            let c = (2.0 / std::f64::consts::PI).sqrt();
            let t = (c * (x + 0.044715 * x * x * x)).tanh();
            0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * c * (1.0 + 3.0 * 0.044715 * x * x)
        }
        Gelu::Erf => 0.5 * (1.0 + erf(x / std::f64::consts::SQRT_2)) + x * (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt(),
    }
}

/// dx = dy · GELU'(x), element by element.
pub fn gelu_backward(x: &[f64], dy: &[f64], kind: Gelu) -> Vec<f64> {
    x.iter().zip(dy).map(|(&x, &g)| g * gelu_grad(x, kind)).collect()
}
