//! The global gradient norm and clipping factor: in f64, and in f32 in the kernels' order.

use super::CHUNK;

/// sqrt(Σ over every tensor of Σ g²).
pub fn global_norm(grads: &[&[f64]]) -> f64 {
    grads.iter().flat_map(|g| g.iter()).map(|v| v * v).sum::<f64>().sqrt()
}

/// The clipping factor for `norm`: min(1, max_norm / (norm + 1e-6)), 1 without clipping (max_norm 0).
pub fn clip_factor(norm: f64, max_norm: f64) -> f64 {
    if max_norm > 0.0 && norm > max_norm {
        max_norm / (norm + 1e-6)
    } else {
        1.0
    }
}

/// The norm in f32, summed as the kernels sum it: chunks of `CHUNK` per tensor fma'd in order (`fused`:
/// whether fma rounds once), the chunk sums added in order.
pub fn global_norm_f32(grads: &[&[f32]], fused: bool) -> f32 {
    let mut total = 0.0f32;
    for g in grads {
        for chunk in g.chunks(CHUNK) {
            total += chunk.iter().fold(0.0f32, |acc, &v| if fused { v.mul_add(v, acc) } else { v * v + acc });
        }
    }
    total.sqrt()
}
