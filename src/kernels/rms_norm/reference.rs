//! `rms_norm` in f64.

/// The clamp of the norm in `F.normalize` (PyTorch's default eps): ‖v‖ is replaced by
/// max(‖v‖, eps), so the eps is outside the square root, unlike vmoe's (`NORM_EPS`).
pub const RMS_NORM_EPS: f64 = 1e-12;

/// soft-moe-pytorch's `RMSNorm.scale`, `dim ** 0.5`.
pub fn rms_mult(len: usize) -> f64 {
    (len as f64).sqrt()
}

/// `v / max(‖v‖, 1e-12) · √len · gamma[k]` for each of `count` vectors of `len` values, laid out
/// with the given strides (`gamma` has `len` values).
pub fn rms_norm(v: &[f64], gamma: &[f64], count: usize, len: usize, vec_stride: usize, elem_stride: usize) -> Vec<f64> {
    assert_eq!(gamma.len(), len, "one gamma per element of a vector");
    let mut out = v.to_vec();
    let mult = rms_mult(len);
    for c in 0..count {
        let idx = |k: usize| c * vec_stride + k * elem_stride;
        let norm = (0..len).map(|k| v[idx(k)] * v[idx(k)]).sum::<f64>().sqrt().max(RMS_NORM_EPS);
        for (k, g) in gamma.iter().enumerate() {
            out[idx(k)] = v[idx(k)] / norm * mult * g;
        }
    }
    out
}
