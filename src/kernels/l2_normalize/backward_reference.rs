//! The L2 normalisation's backward in f64.

use super::reference::NORM_EPS;

/// dx for `count` vectors of `len` values laid out with the given strides, from the forward's
/// input x and dy: r (g − y (y·g)), r = 1/sqrt(‖x‖² + eps), y = r x.
pub fn l2_normalize_backward(x: &[f64], dy: &[f64], count: usize, len: usize, vec_stride: usize, elem_stride: usize) -> Vec<f64> {
    let mut out = vec![0.0; x.len()];
    for c in 0..count {
        let idx = |k: usize| c * vec_stride + k * elem_stride;
        let ss: f64 = (0..len).map(|k| x[idx(k)] * x[idx(k)]).sum();
        let inv = 1.0 / (ss + NORM_EPS).sqrt();
        let yg: f64 = (0..len).map(|k| x[idx(k)] * inv * dy[idx(k)]).sum();
        for k in 0..len {
            out[idx(k)] = inv * (dy[idx(k)] - x[idx(k)] * inv * yg);
        }
    }
    out
}
