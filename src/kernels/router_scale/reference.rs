//! The router's slot parameters and their gradients in f64.

use crate::kernels::l2_normalize::backward_reference::l2_normalize_backward;
use crate::kernels::l2_normalize::reference::l2_normalize;

/// (Φ̂, Φs = scale · Φ̂) for mu [d, s]: Φ̂ column-normalised when `normalize`, else mu.
pub fn router_scale(mu: &[f64], scale: f64, d: usize, s: usize, normalize: bool) -> (Vec<f64>, Vec<f64>) {
    let hat = if normalize { l2_normalize(mu, s, d, 1, s) } else { mu.to_vec() };
    let scaled = hat.iter().map(|v| v * scale).collect();
    (hat, scaled)
}

/// (d mu, d scale) from d Φs.
pub fn router_scale_backward(mu: &[f64], scale: f64, d_scaled: &[f64], d: usize, s: usize, normalize: bool) -> (Vec<f64>, f64) {
    let (hat, _) = router_scale(mu, scale, d, s, normalize);
    let d_scale = d_scaled.iter().zip(&hat).map(|(g, h)| g * h).sum();
    let d_hat: Vec<f64> = d_scaled.iter().map(|g| g * scale).collect();
    let d_mu = if normalize { l2_normalize_backward(mu, &d_hat, s, d, 1, s) } else { d_hat };
    (d_mu, d_scale)
}
