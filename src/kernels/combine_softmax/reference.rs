//! `combine_softmax` in f64.

/// Combine weights: softmax over slots (the columns of the m×s logits), per token.
pub fn combine_softmax(l: &[f64], m: usize, s: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * s];
    for i in 0..m {
        let row = &l[i * s..(i + 1) * s];
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = row.iter().map(|v| (v - max).exp()).sum();
        for j in 0..s {
            out[i * s + j] = (row[j] - max).exp() / sum;
        }
    }
    out
}
