//! `dispatch_softmax` in f64.

/// Dispatch weights: softmax over tokens (the rows of the m×s logits), per slot.
pub fn dispatch_softmax(l: &[f64], m: usize, s: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * s];
    for j in 0..s {
        let max = (0..m).map(|i| l[i * s + j]).fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = (0..m).map(|i| (l[i * s + j] - max).exp()).sum();
        for i in 0..m {
            out[i * s + j] = (l[i * s + j] - max).exp() / sum;
        }
    }
    out
}
