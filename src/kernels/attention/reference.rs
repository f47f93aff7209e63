//! `attention` in f64.

/// LayerNorm on each head's queries and keys (`query_ln`/`key_ln` of Flax's attention with
/// `normalize_qk`): the scales over the head dimension, no bias, and the LayerNorm's eps.
#[derive(Clone, Copy, Debug)]
pub struct QkNormRef<'a> {
    pub query: &'a [f32],
    pub key: &'a [f32],
    pub eps: f64,
}

/// Multi-head self-attention from fused qkv [b·m, 3d] (q | k | v, head-major) to [b·m, d].
pub fn attention(qkv: &[f64], b: usize, m: usize, heads: usize, hd: usize) -> Vec<f64> {
    attention_qk(qkv, b, m, heads, hd, None)
}

/// As [`attention`], with LayerNorm on queries and keys when `qk_norm` is given.
pub fn attention_qk(qkv: &[f64], b: usize, m: usize, heads: usize, hd: usize, qk_norm: Option<QkNormRef>) -> Vec<f64> {
    let d = heads * hd;
    let part = |p: usize| -> Vec<f64> { qkv.chunks(3 * d).flat_map(|row| row[p * d..(p + 1) * d].to_vec()).collect() };
    attend(Queries::PerExample(&part(0), m), &part(1), &part(2), b, m, heads, hd, qk_norm)
}

/// The queries of [`attend`], rows of d values (head-major).
#[derive(Clone, Copy, Debug)]
pub enum Queries<'a> {
    /// [b·n, d]: n queries of each example's own.
    PerExample(&'a [f64], usize),
    /// [n, d]: the same n queries for every example (attention pooling's probe).
    Shared(&'a [f64], usize),
}

/// Attention of the queries over m keys and values per example (k, v [b·m, d]), head-major: out
/// [b·n, d] for n queries per example.
#[allow(clippy::too_many_arguments)]
pub fn attend(queries: Queries, k: &[f64], v: &[f64], b: usize, m: usize, heads: usize, hd: usize, qk_norm: Option<QkNormRef>) -> Vec<f64> {
    let d = heads * hd;
    let (q, queries, shared) = match queries {
        Queries::PerExample(q, n) => (q, n, false),
        Queries::Shared(q, n) => (q, n, true),
    };
    let norm = |x: &[f64], scale: &[f32], eps: f64| -> Vec<f64> {
        let mean = x.iter().sum::<f64>() / x.len() as f64;
        let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / x.len() as f64;
        x.iter().zip(scale).map(|(v, &s)| (v - mean) / (var + eps).sqrt() * s as f64).collect()
    };
    let head = |rows: &[f64], row: usize, h: usize, scale: Option<(&[f32], f64)>| -> Vec<f64> {
        let x = &rows[row * d + h * hd..row * d + (h + 1) * hd];
        match scale {
            Some((s, eps)) => norm(x, s, eps),
            None => x.to_vec(),
        }
    };
    let (qs, ks) = (qk_norm.map(|n| (n.query, n.eps)), qk_norm.map(|n| (n.key, n.eps)));
    let mut out = vec![0.0; b * queries * d];
    let scale = 1.0 / (hd as f64).sqrt();
    for e in 0..b {
        for h in 0..heads {
            let keys: Vec<Vec<f64>> = (0..m).map(|t| head(k, e * m + t, h, ks)).collect();
            for i in 0..queries {
                let qi = head(q, if shared { i } else { e * queries + i }, h, qs);
                let scores: Vec<f64> = keys.iter().map(|kt| qi.iter().zip(kt).map(|(a, b)| a * b).sum::<f64>() * scale).collect();
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let w: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let sum: f64 = w.iter().sum();
                for j in 0..hd {
                    out[(e * queries + i) * d + h * hd + j] = (0..m).map(|t| w[t] * v[(e * m + t) * d + h * hd + j]).sum::<f64>() / sum;
                }
            }
        }
    }
    out
}
