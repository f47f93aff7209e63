//! `layer_norm` in f64.

/// LayerNorm over the last axis of x [rows, d]: (x − mean)/sqrt(var + eps)·scale + bias.
pub fn layer_norm(x: &[f64], d: usize, scale: &[f32], bias: &[f32], eps: f64) -> Vec<f64> {
    let mut y = Vec::with_capacity(x.len());
    for row in x.chunks(d) {
        let mean = row.iter().sum::<f64>() / d as f64;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / d as f64;
        let inv = 1.0 / (var + eps).sqrt();
        y.extend(row.iter().enumerate().map(|(j, v)| (v - mean) * inv * scale[j] as f64 + bias[j] as f64));
    }
    y
}
