//! `sparse_gather` in f64.

use super::RouteShape;

/// The experts' inputs [groups, n·cap, d]: slot c of expert e in group g holds the token routed
/// there, zeros where none was.
pub fn sparse_gather(s: &RouteShape, d: usize, slots: &[Option<usize>], x: &[f64]) -> Vec<f64> {
    let mut xs = vec![0.0; s.groups * s.n * s.cap_full * d];
    for t in 0..s.rows {
        let g = t / s.group_tokens;
        for e in 0..s.n {
            if let Some(c) = slots[t * s.n + e] {
                let at = ((g * s.n + e) * s.cap_full + c) * d;
                xs[at..at + d].copy_from_slice(&x[t * d..(t + 1) * d]);
            }
        }
    }
    xs
}
