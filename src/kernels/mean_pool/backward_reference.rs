//! `mean_pool`'s backward in f64.

/// dx [b, m, d] from d pooled [b, d]: each token's share is 1/m.
pub fn mean_pool_backward(d_pooled: &[f64], b: usize, m: usize, d: usize) -> Vec<f64> {
    (0..b * m * d).map(|i| d_pooled[(i / (m * d)) * d + i % d] / m as f64).collect()
}
