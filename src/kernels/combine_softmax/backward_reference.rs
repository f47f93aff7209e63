//! The combine softmax's backward in f64.

/// dL (m×s) from C = softmax over slots (each row) and dC.
pub fn combine_softmax_backward(combine: &[f64], d_combine: &[f64], m: usize, s: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * s];
    for i in 0..m {
        let dot: f64 = (0..s).map(|j| combine[i * s + j] * d_combine[i * s + j]).sum();
        for j in 0..s {
            out[i * s + j] = combine[i * s + j] * (d_combine[i * s + j] - dot);
        }
    }
    out
}
