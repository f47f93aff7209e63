//! `sparse_combine` in f64.

use super::RouteShape;

/// y [rows, d] = Σ over the experts e that took token t of gate(t, e) · Ỹ[its slot], in expert order.
pub fn sparse_combine(s: &RouteShape, d: usize, gates: &[f64], slots: &[Option<usize>], ys: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; s.rows * d];
    for t in 0..s.rows {
        let g = t / s.group_tokens;
        for e in 0..s.n {
            if let Some(c) = slots[t * s.n + e] {
                let at = ((g * s.n + e) * s.cap_full + c) * d;
                for k in 0..d {
                    y[t * d + k] += gates[t * s.n + e] * ys[at + k];
                }
            }
        }
    }
    y
}
