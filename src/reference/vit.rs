//! The ViT of SPEC §2 in f64, one function per GPU kernel.

use crate::config::{Pooling, VitConfig};
use crate::error::{Error, Result};
use crate::reference::{
    add_position, attend, attention_qk, dense, gelu, layer_norm, mean_pool, patchify, soft_moe_f64, sparse_moe_f64, QkNormRef, Queries,
    SparseReference,
};
use crate::tensor::Tensor;
use crate::weights::{BlockMlp, MapHeadWeights, VitWeights};

/// Logits [b, classes] and, per Soft MoE block, its dispatch and combine weights [b, m, n·p].
#[derive(Clone, Debug)]
pub struct VitReference {
    pub logits: Vec<f64>,
    pub maps: Vec<(usize, Vec<f64>, Vec<f64>)>,
    /// Per sparse MoE block: its gates and routing.
    pub routes: Vec<(usize, SparseReference)>,
}

/// Checks images [b, H, W] (C = 1) or [b, H, W, C] against the config; returns b.
pub fn check_images(c: &VitConfig, images: &Tensor) -> Result<usize> {
    let s = c.image_size;
    let ok = match images.shape[..] {
        [_, h, w] => c.channels == 1 && h == s && w == s,
        [_, h, w, ch] => h == s && w == s && ch == c.channels,
        _ => false,
    };
    if !ok {
        let expected = format!("shape [b, {s}, {s}] or [b, {s}, {s}, {}]", c.channels);
        return Err(Error::input("images", expected, format!("shape {:?}", images.shape)));
    }
    let numel = images.shape.iter().product::<usize>();
    if images.data.len() != numel {
        return Err(Error::input("images", format!("{numel} values (shape {:?})", images.shape), format!("{} values", images.data.len())));
    }
    if let Some(i) = images.data.iter().position(|v| !v.is_finite()) {
        return Err(Error::input("images", "finite pixels", format!("a non-finite pixel at flat index {i}")));
    }
    Ok(images.shape[0])
}

/// The whole model on images in [0, 1].
pub fn vit_forward(w: &VitWeights, images: &Tensor) -> Result<VitReference> {
    let c = &w.config;
    let b = check_images(c, images)?;
    let (patches, m, d) = (c.tokens(), c.seq_len(), c.hidden_size);
    let eps = c.layer_norm_eps as f64;
    let img: Vec<f64> = images.data.iter().map(|&v| v as f64).collect();
    let embedded = dense(&patchify(&img, b, c), b * patches, c.patch_dim(), d, &w.embedding_kernel, &w.embedding_bias);
    let mut x = match (c.classifier, &w.cls) {
        // The class token first, then the image's patch tokens.
        (Pooling::Token, Some(cls)) if cls.len() == d => {
            embedded.chunks(patches * d).flat_map(|e| cls.iter().map(|&v| v as f64).chain(e.iter().copied())).collect()
        }
        (Pooling::Gap | Pooling::Map, None) => embedded,
        (_, cls) => {
            let found = cls.as_ref().map_or("none".to_string(), |c| format!("{} values", c.len()));
            return Err(Error::input("VitWeights cls", format!("a class token of {d} values exactly with classifier `token`"), found));
        }
    };
    if w.pos_embedding.len() != m * d {
        let expected = format!("{} values ([{m}, {d}])", m * d);
        return Err(Error::input("VitWeights pos_embedding", expected, format!("{} values", w.pos_embedding.len())));
    }
    add_position(&mut x, &w.pos_embedding);
    let mut maps = Vec::new();
    let mut routes = Vec::new();
    for (k, blk) in w.blocks.iter().enumerate() {
        let h = layer_norm(&x, d, &blk.ln0_scale, &blk.ln0_bias, eps);
        let qkv = dense(&h, b * m, d, 3 * d, &blk.qkv_kernel, &blk.qkv_bias);
        let qk_norm = match (&blk.qk_norm, c.attention_qk_norm) {
            (Some(n), true) => Some(QkNormRef { query: &n.query, key: &n.key, eps }),
            (None, false) => None,
            (n, _) => {
                return Err(Error::input(
                    format!("VitWeights block {k}"),
                    "qk-norm scales exactly when the config sets `attention_qk_norm`",
                    if n.is_some() { "scales, with `attention_qk_norm` unset" } else { "no scales, with `attention_qk_norm` set" },
                ))
            }
        };
        let att = attention_qk(&qkv, b, m, c.num_heads, c.head_dim(), qk_norm);
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
    let pooled = match (c.classifier, &w.map_head) {
        (Pooling::Gap, None) => mean_pool(&x, b, m, d),
        (Pooling::Token, None) => x.chunks(m * d).flat_map(|e| e[..d].to_vec()).collect(),
        (Pooling::Map, Some(h)) => map_head(c, h, &x, b)?,
        (_, h) => {
            let found = if h.is_some() { "a MAP head" } else { "none" };
            return Err(Error::input("VitWeights map_head", "a MAP head exactly with classifier `map`", found));
        }
    };
    Ok(VitReference { logits: dense(&pooled, b, d, c.num_classes, &w.head_kernel, &w.head_bias), maps, routes })
}

/// vmoe's `MapHead` on the final LayerNorm's output x [b·seq, d]: the probe's multi-head attention
/// over each image's tokens, `out`, then out + Mlp(LayerNorm(out)); [b, d].
fn map_head(c: &VitConfig, h: &MapHeadWeights, x: &[f64], b: usize) -> Result<Vec<f64>> {
    let (m, d, eps) = (c.seq_len(), c.hidden_size, c.layer_norm_eps as f64);
    let probe: Vec<f64> = h.probe.iter().map(|&v| v as f64).collect();
    let q = dense(&probe, 1, d, 3 * d, &h.qkv_kernel, &h.qkv_bias)[..d].to_vec();
    let kv = dense(x, b * m, d, 3 * d, &h.qkv_kernel, &h.qkv_bias);
    let part = |p: usize| -> Vec<f64> { kv.chunks(3 * d).flat_map(|row| row[p * d..(p + 1) * d].to_vec()).collect() };
    let qk_norm = match (&h.qk_norm, c.attention_qk_norm) {
        (Some(n), true) => Some(QkNormRef { query: &n.query, key: &n.key, eps }),
        (None, false) => None,
        (n, _) => {
            let found = if n.is_some() { "scales, with `attention_qk_norm` unset" } else { "no scales, with `attention_qk_norm` set" };
            return Err(Error::input("VitWeights the MAP head", "qk-norm scales exactly when the config sets `attention_qk_norm`", found));
        }
    };
    let att = attend(Queries::Shared(&q, 1), &part(1), &part(2), b, m, c.num_heads, c.head_dim(), qk_norm);
    let out = dense(&att, b, d, d, &h.out_kernel, &h.out_bias);
    let y = layer_norm(&out, d, &h.ln_scale, &h.ln_bias, eps);
    let z: Vec<f64> = dense(&y, b, d, c.mlp_dim, &h.w0, &h.b0).into_iter().map(|v| gelu(v, c.gelu)).collect();
    let y = dense(&z, b, c.mlp_dim, d, &h.w1, &h.b1);
    Ok(out.iter().zip(y).map(|(a, v)| a + v).collect())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::random::{random_vit, Rng};

    fn qk_config() -> VitConfig {
        let mut c = VitConfig::from_json(
            r#"{"image_size": 8, "channels": 1, "patch_size": 2, "hidden_size": 12, "num_layers": 2, "num_heads": 3,
                "mlp_dim": 10, "num_classes": 4, "moe_layers": [1], "num_experts": 3, "slots_per_expert": 2,
                "expert_mlp_dim": 7, "attention_qk_norm": true}"#,
            "config.json",
        )
        .unwrap();
        c.layer_norm_eps = 1e-12;
        c
    }

    fn images(b: usize) -> Tensor {
        Tensor::new(vec![b, 8, 8], Rng::new(77).vec(b * 64, 0.5).into_iter().map(|v| v + 0.5).collect()).unwrap()
    }

    #[test]
    fn with_qk_norm_scaling_the_query_and_key_projections_changes_nothing() {
        // LayerNorm takes each head's scale out of q and k (up to its eps): a positive factor on the
        // query and key kernels and biases leaves the logits as they are; without qk-norm it does not.
        let w = random_vit(&mut Rng::new(61), &qk_config());
        let x = images(3);
        let base = vit_forward(&w, &x).unwrap().logits;
        let d = w.config.hidden_size;
        let mut scaled = w.clone();
        for b in &mut scaled.blocks {
            for row in b.qkv_kernel.chunks_mut(3 * d) {
                row[..d].iter_mut().for_each(|v| *v *= 4.0);
                row[d..2 * d].iter_mut().for_each(|v| *v *= 2.0);
            }
            b.qkv_bias[..d].iter_mut().for_each(|v| *v *= 4.0);
            b.qkv_bias[d..2 * d].iter_mut().for_each(|v| *v *= 2.0);
        }
        let same = vit_forward(&scaled, &x).unwrap().logits;
        let diff = crate::compare::max_abs_diff(&same, &base).unwrap().max;
        assert!(diff < 1e-9, "scaled q/k projections moved the logits by {diff:e}");
        // The same scaling without qk-norm changes the attention, hence the logits.
        let plain = |w: &VitWeights| {
            let mut w = w.clone();
            w.config.attention_qk_norm = false;
            w.blocks.iter_mut().for_each(|b| b.qk_norm = None);
            vit_forward(&w, &x).unwrap().logits
        };
        assert!(crate::compare::max_abs_diff(&plain(&scaled), &plain(&w)).unwrap().max > 1e-3);
        // And the scales themselves do: a key scale is a temperature on the scores.
        let mut hotter = w.clone();
        hotter.blocks.iter_mut().for_each(|b| b.qk_norm.as_mut().unwrap().key.iter_mut().for_each(|v| *v *= 3.0));
        assert!(crate::compare::max_abs_diff(&vit_forward(&hotter, &x).unwrap().logits, &base).unwrap().max > 1e-3);
    }

    #[test]
    fn weights_that_disagree_with_the_config_on_qk_norm_are_refused() {
        let mut w = random_vit(&mut Rng::new(62), &qk_config());
        w.blocks[1].qk_norm = None;
        let e = vit_forward(&w, &images(1)).unwrap_err();
        assert!(matches!(&e, Error::Input { what, .. } if what == "VitWeights block 1"), "{e:?}");
    }
}
