//! The dispatch softmax's backward in f64.

/// dL (m×s) of one example from D = softmax over tokens (the rows) and dD.
pub fn dispatch_softmax_backward(dispatch: &[f64], d_dispatch: &[f64], m: usize, s: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * s];
    for j in 0..s {
        let dot: f64 = (0..m).map(|i| dispatch[i * s + j] * d_dispatch[i * s + j]).sum();
        for i in 0..m {
            out[i * s + j] = dispatch[i * s + j] * (d_dispatch[i * s + j] - dot);
        }
    }
    out
}
