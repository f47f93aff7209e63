//! AdamW in f64 (the update as written) and in f32 in the kernel's (and candle's) order.

use super::Adamw;

#[allow(clippy::too_many_arguments)]
/// One AdamW step in f64 at step t (1-based), gradient already clipped: returns (θ, m, v).
pub fn adamw_f64(
    a: &Adamw,
    t: u64,
    lr: f64,
    decay: bool,
    theta: &[f64],
    g: &[f64],
    m: &[f64],
    v: &[f64],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let wd = if decay { a.weight_decay } else { 0.0 };
    let (bc1, bc2) = (1.0 - a.beta1.powi(t as i32), 1.0 - a.beta2.powi(t as i32));
    let mut out = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..theta.len() {
        let mi = a.beta1 * m[i] + (1.0 - a.beta1) * g[i];
        let vi = a.beta2 * v[i] + (1.0 - a.beta2) * g[i] * g[i];
        let th = theta[i] * (1.0 - lr * wd) - lr * (mi / bc1) / ((vi / bc2).sqrt() + a.eps);
        out.0.push(th);
        out.1.push(mi);
        out.2.push(vi);
    }
    out
}

#[allow(clippy::too_many_arguments)]
/// The same step in f32, operation by operation as adamw.wgsl (and candle-nn) does it.
pub fn adamw_f32(hyper: &[f32; 4], a: &Adamw, decay: bool, clip: f32, theta: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    let (b1, b2, c1, c2, eps) = (a.beta1 as f32, a.beta2 as f32, (1.0 - a.beta1) as f32, (1.0 - a.beta2) as f32, a.eps as f32);
    let keep = if decay { hyper[1] } else { 1.0 };
    for i in 0..theta.len() {
        let gi = g[i] * clip;
        m[i] = m[i] * b1 + gi * c1;
        v[i] = v[i] * b2 + (gi * gi) * c2;
        let step = (m[i] * hyper[2] / ((v[i] * hyper[3]).sqrt() + eps)) * hyper[0];
        theta[i] = theta[i] * keep - step;
    }
}
