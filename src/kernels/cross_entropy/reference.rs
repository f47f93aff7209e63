//! Softmax cross-entropy with label smoothing in f64: the loss and its gradient.

/// Per example of logits [b, classes]: −Σ_k t_k log p_k with t = (1 − ε)·onehot + ε/K.
pub fn cross_entropy(logits: &[f64], labels: &[u32], classes: usize, smoothing: f64) -> Vec<f64> {
    logits
        .chunks(classes)
        .zip(labels)
        .map(|(row, &label)| {
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
            let mean_log_p = row.iter().map(|v| v - lse).sum::<f64>() / classes as f64;
            -(1.0 - smoothing) * (row[label as usize] - lse) - smoothing * mean_log_p
        })
        .collect()
}

/// d (mean over the batch of `cross_entropy`) / d logits: (softmax − t) / b.
pub fn cross_entropy_backward(logits: &[f64], labels: &[u32], classes: usize, smoothing: f64) -> Vec<f64> {
    let b = labels.len() as f64;
    let mut out = Vec::with_capacity(logits.len());
    for (row, &label) in logits.chunks(classes).zip(labels) {
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = row.iter().map(|v| (v - max).exp()).sum();
        for (k, v) in row.iter().enumerate() {
            let target = smoothing / classes as f64 + if k == label as usize { 1.0 - smoothing } else { 0.0 };
            out.push(((v - max).exp() / sum - target) / b);
        }
    }
    out
}
