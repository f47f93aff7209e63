//! `mean_pool` in f64.

/// Mean over the m tokens of each example: [b, m, d] → [b, d].
pub fn mean_pool(x: &[f64], b: usize, m: usize, d: usize) -> Vec<f64> {
    (0..b).flat_map(|e| (0..d).map(move |j| (0..m).map(|t| x[(e * m + t) * d + j]).sum::<f64>() / m as f64)).collect()
}
