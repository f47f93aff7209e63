//! The ViT of SPEC §2 in f64, one function per GPU kernel.

use crate::config::VitConfig;
use crate::error::{Error, Result};
use crate::reference::{gelu, soft_moe_f64, sparse_moe_f64, SparseReference};
use crate::tensor::Tensor;
use crate::weights::{BlockMlp, VitWeights};

/// Logits [b, classes] and, per Soft MoE block, its dispatch and combine weights [b, m, n·p].
#[derive(Clone, Debug)]
pub struct VitReference {
    pub logits: Vec<f64>,
    pub maps: Vec<(usize, Vec<f64>, Vec<f64>)>,
    /// Per sparse MoE block: its gates and routing.
    pub routes: Vec<(usize, SparseReference)>,
}

/// Images [b, H, W, C] → patch rows [b·m, P·P·C], tokens row-major over the grid, (py, px, c) inside.
pub fn patchify(images: &[f64], b: usize, c: &VitConfig) -> Vec<f64> {
    let (s, p, ch, g) = (c.image_size, c.patch_size, c.channels, c.grid());
    let mut out = Vec::with_capacity(b * c.tokens() * c.patch_dim());
    for e in 0..b {
        for gy in 0..g {
            for gx in 0..g {
                for py in 0..p {
                    for px in 0..p {
                        for k in 0..ch {
                            out.push(images[((e * s + gy * p + py) * s + gx * p + px) * ch + k]);
                        }
                    }
                }
            }
        }
    }
    out
}

/// x·W + bias for `rows` rows of x [rows, k]; W [k, n].
pub fn dense(x: &[f64], rows: usize, k: usize, n: usize, w: &[f32], bias: &[f32]) -> Vec<f64> {
    let mut y = Vec::with_capacity(rows * n);
    for r in 0..rows {
        for j in 0..n {
            y.push(bias[j] as f64 + (0..k).map(|t| x[r * k + t] * w[t * n + j] as f64).sum::<f64>());
        }
    }
    y
}

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

/// Mean over the m tokens of each example: [b, m, d] → [b, d].
pub fn mean_pool(x: &[f64], b: usize, m: usize, d: usize) -> Vec<f64> {
    (0..b).flat_map(|e| (0..d).map(move |j| (0..m).map(|t| x[(e * m + t) * d + j]).sum::<f64>() / m as f64)).collect()
}

/// Checks images [b, H, W] (C = 1) or [b, H, W, C] against the config; returns b.
pub fn check_images(c: &VitConfig, images: &Tensor) -> Result<usize> {
    let s = c.image_size;
    let ok = match images.shape[..] {
        [_, h, w] => c.channels == 1 && h == s && w == s,
        [_, h, w, ch] => h == s && w == s && ch == c.channels,
        _ => false,
    };
    if !ok || images.data.len() != images.shape.iter().product::<usize>() {
        return Err(Error::Input(format!("images have shape {:?}, expected [b, {s}, {s}] or [b, {s}, {s}, {}]", images.shape, c.channels)));
    }
    if let Some(i) = images.data.iter().position(|v| !v.is_finite()) {
        return Err(Error::Input(format!("image pixel at flat index {i} is not finite")));
    }
    Ok(images.shape[0])
}

/// The whole model on images in [0, 1].
pub fn vit_forward(w: &VitWeights, images: &Tensor) -> Result<VitReference> {
    let c = &w.config;
    let b = check_images(c, images)?;
    let (m, d) = (c.tokens(), c.hidden_size);
    let eps = c.layer_norm_eps as f64;
    let img: Vec<f64> = images.data.iter().map(|&v| v as f64).collect();
    let mut x = dense(&patchify(&img, b, c), b * m, c.patch_dim(), d, &w.embedding_kernel, &w.embedding_bias);
    for (i, v) in x.iter_mut().enumerate() {
        *v += w.pos_embedding[i % (m * d)] as f64;
    }
    let mut maps = Vec::new();
    let mut routes = Vec::new();
    for (k, blk) in w.blocks.iter().enumerate() {
        let h = layer_norm(&x, d, &blk.ln0_scale, &blk.ln0_bias, eps);
        let qkv = dense(&h, b * m, d, 3 * d, &blk.qkv_kernel, &blk.qkv_bias);
        let att = attention(&qkv, b, m, c.num_heads, c.head_dim());
        let o = dense(&att, b * m, d, d, &blk.out_kernel, &blk.out_bias);
        x.iter_mut().zip(o).for_each(|(a, v)| *a += v);
        let h = layer_norm(&x, d, &blk.ln2_scale, &blk.ln2_bias, eps);
        let y = match &blk.mlp {
            BlockMlp::Dense { w0, b0, w1, b1 } => {
                let z: Vec<f64> = dense(&h, b * m, d, c.mlp_dim, w0, b0).into_iter().map(|v| gelu(v, c.gelu)).collect();
                dense(&z, b * m, c.mlp_dim, d, w1, b1)
            }
            BlockMlp::SoftMoe(sw) => {
                let r = soft_moe_f64(sw, &h, b, m);
                maps.push((k, r.dispatch, r.combine));
                r.y
            }
            BlockMlp::Sparse(sw) => {
                let mut r = sparse_moe_f64(sw, &h, b, m);
                let y = std::mem::take(&mut r.y);
                routes.push((k, r));
                y
            }
        };
        x.iter_mut().zip(y).for_each(|(a, v)| *a += v);
    }
    let x = layer_norm(&x, d, &w.norm_scale, &w.norm_bias, eps);
    let pooled = mean_pool(&x, b, m, d);
    Ok(VitReference { logits: dense(&pooled, b, d, c.num_classes, &w.head_kernel, &w.head_bias), maps, routes })
}

/// Softmax of logits rows (used by every backend for the reported probabilities).
pub fn softmax_rows(logits: &[f32], classes: usize) -> Vec<f32> {
    logits
        .chunks(classes)
        .flat_map(|row| {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f64> = row.iter().map(|&v| ((v - max) as f64).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(move |v| (v / s) as f32)
        })
        .collect()
}
