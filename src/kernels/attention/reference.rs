//! `attention` in f64.

/// Multi-head self-attention from fused qkv [b·m, 3d] (q | k | v, head-major) to [b·m, d].
pub fn attention(qkv: &[f64], b: usize, m: usize, heads: usize, hd: usize) -> Vec<f64> {
    let d = heads * hd;
    let at = |e: usize, t: usize, part: usize, h: usize, j: usize| qkv[(e * m + t) * 3 * d + part * d + h * hd + j];
    let mut out = vec![0.0; b * m * d];
    let scale = 1.0 / (hd as f64).sqrt();
    for e in 0..b {
        for h in 0..heads {
            for i in 0..m {
                let scores: Vec<f64> =
                    (0..m).map(|t| (0..hd).map(|j| at(e, i, 0, h, j) * at(e, t, 1, h, j)).sum::<f64>() * scale).collect();
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let w: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f64 = w.iter().sum();
                for j in 0..hd {
                    out[(e * m + i) * d + h * hd + j] = (0..m).map(|t| w[t] * at(e, t, 2, h, j)).sum::<f64>() / sum;
                }
            }
        }
    }
    out
}
