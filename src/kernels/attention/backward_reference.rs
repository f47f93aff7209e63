//! The backward of multi-head self-attention in f64.

/// d qkv [b·m, 3d] (q | k | v, head-major) from qkv and d out [b·m, d].
pub fn attention_backward(qkv: &[f64], d_out: &[f64], b: usize, m: usize, heads: usize, hd: usize) -> Vec<f64> {
    let d = heads * hd;
    let at = |e: usize, t: usize, part: usize, h: usize| (e * m + t) * 3 * d + part * d + h * hd;
    let mut g = vec![0.0; qkv.len()];
    let scale = 1.0 / (hd as f64).sqrt();
    for e in 0..b {
        for h in 0..heads {
            for i in 0..m {
                let (q, o) = (at(e, i, 0, h), (e * m + i) * d + h * hd);
                let s: Vec<f64> = (0..m).map(|t| (0..hd).map(|j| qkv[q + j] * qkv[at(e, t, 1, h) + j]).sum::<f64>() * scale).collect();
                let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let w: Vec<f64> = s.iter().map(|v| (v - max).exp()).collect();
                let sum: f64 = w.iter().sum();
                let pr: Vec<f64> = w.iter().map(|v| v / sum).collect();
                let dp: Vec<f64> = (0..m).map(|t| (0..hd).map(|j| d_out[o + j] * qkv[at(e, t, 2, h) + j]).sum()).collect();
                let delta: f64 = (0..m).map(|t| pr[t] * dp[t]).sum();
                for t in 0..m {
                    let ds = pr[t] * (dp[t] - delta) * scale;
                    let (k, v) = (at(e, t, 1, h), at(e, t, 2, h));
                    for j in 0..hd {
                        g[q + j] += ds * qkv[k + j];
                        g[k + j] += ds * qkv[q + j];
                        g[v + j] += pr[t] * d_out[o + j];
                    }
                }
            }
        }
    }
    g
}
