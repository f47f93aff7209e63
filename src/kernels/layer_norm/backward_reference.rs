//! LayerNorm's backward in f64.

/// (dx, d scale, d bias) of y = LayerNorm(x)·scale + bias over rows of d, from dy.
pub fn layer_norm_backward(x: &[f64], d: usize, scale: &[f32], dy: &[f64], eps: f64) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut dx = Vec::with_capacity(x.len());
    let (mut ds, mut db) = (vec![0.0; d], vec![0.0; d]);
    for (row, g) in x.chunks(d).zip(dy.chunks(d)) {
        let mean = row.iter().sum::<f64>() / d as f64;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / d as f64;
        let inv = 1.0 / (var + eps).sqrt();
        let xh: Vec<f64> = row.iter().map(|v| (v - mean) * inv).collect();
        let gh: Vec<f64> = g.iter().zip(scale).map(|(g, &s)| g * s as f64).collect();
        let g_mean = gh.iter().sum::<f64>() / d as f64;
        let gx_mean = gh.iter().zip(&xh).map(|(a, b)| a * b).sum::<f64>() / d as f64;
        for j in 0..d {
            dx.push((gh[j] - g_mean - xh[j] * gx_mean) * inv);
            ds[j] += g[j] * xh[j];
            db[j] += g[j];
        }
    }
    (dx, ds, db)
}
