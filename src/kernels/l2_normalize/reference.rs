//! `l2_normalize` in f64.

/// The epsilon inside the square root of the L2 normalisation (vmoe's value).
pub const NORM_EPS: f64 = 1e-6;

/// `v · 1/sqrt(‖v‖² + eps)` for each of `count` vectors of `len` values, laid out with the given strides.
pub fn l2_normalize(v: &[f64], count: usize, len: usize, vec_stride: usize, elem_stride: usize) -> Vec<f64> {
    let mut out = v.to_vec();
    for c in 0..count {
        let idx = |k: usize| c * vec_stride + k * elem_stride;
        let ss: f64 = (0..len).map(|k| v[idx(k)] * v[idx(k)]).sum();
        let inv = 1.0 / (ss + NORM_EPS).sqrt();
        for k in 0..len {
            out[idx(k)] = v[idx(k)] * inv;
        }
    }
    out
}
