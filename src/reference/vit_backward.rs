//! One training step's loss and gradients for the whole ViT in f64: the forward of `vit.rs` on f64
//! parameters (in `ParamLayout` order), keeping what the backward needs, then the backward stage by
//! stage from the kernels' f64 backward references. The oracle of the GPU trainer's gradients, itself
//! checked against central differences of the loss (tests below).

use crate::config::VitConfig;
use crate::error::{Error, Result};
use crate::kernels::attention::backward_reference::attention_backward;
use crate::kernels::combine_softmax::backward_reference::combine_softmax_backward;
use crate::kernels::cross_entropy::reference::{cross_entropy, cross_entropy_backward};
use crate::kernels::dispatch_softmax::backward_reference::dispatch_softmax_backward;
use crate::kernels::gelu::reference::gelu_backward;
use crate::kernels::l2_normalize::backward_reference::l2_normalize_backward;
use crate::kernels::mean_pool::backward_reference::mean_pool_backward;
use crate::kernels::router_scale::reference::{router_scale, router_scale_backward};
use crate::reference::{attention, combine_softmax, dispatch_softmax, gelu, l2_normalize, matmul, mean_pool, patchify, transpose};
use crate::weights::params::ParamLayout;

/// x [rows, k] · w [k, n] + bias.
fn linear(x: &[f64], rows: usize, k: usize, n: usize, w: &[f64], bias: &[f64]) -> Vec<f64> {
    let mut y = matmul(x, w, rows, k, n);
    for row in y.chunks_mut(n) {
        row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
    }
    y
}

/// (dx, dw, d bias) of `linear` from dy [rows, n].
fn linear_backward(x: &[f64], rows: usize, k: usize, n: usize, w: &[f64], dy: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let dx = matmul(dy, &transpose(w, k, n), rows, n, k);
    let dw = matmul(&transpose(x, rows, k), dy, k, rows, n);
    let mut db = vec![0.0; n];
    for row in dy.chunks(n) {
        db.iter_mut().zip(row).for_each(|(a, v)| *a += v);
    }
    (dx, dw, db)
}

/// LayerNorm with f64 [scale | bias] (`layer_norm::reference::layer_norm`, on f64 parameters).
fn layer_norm(x: &[f64], d: usize, affine: &[f64], eps: f64) -> Vec<f64> {
    let mut y = Vec::with_capacity(x.len());
    for row in x.chunks(d) {
        let mean = row.iter().sum::<f64>() / d as f64;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / d as f64;
        let inv = 1.0 / (var + eps).sqrt();
        y.extend(row.iter().enumerate().map(|(j, v)| (v - mean) * inv * affine[j] + affine[d + j]));
    }
    y
}

/// (dx, d [scale | bias]) of `layer_norm` (`layer_norm::backward_reference`, on f64 parameters).
fn layer_norm_backward(x: &[f64], d: usize, affine: &[f64], dy: &[f64], eps: f64) -> (Vec<f64>, Vec<f64>) {
    let mut dx = Vec::with_capacity(x.len());
    let mut da = vec![0.0; 2 * d];
    for (row, g) in x.chunks(d).zip(dy.chunks(d)) {
        let mean = row.iter().sum::<f64>() / d as f64;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / d as f64;
        let inv = 1.0 / (var + eps).sqrt();
        let xh: Vec<f64> = row.iter().map(|v| (v - mean) * inv).collect();
        let gh: Vec<f64> = (0..d).map(|j| g[j] * affine[j]).collect();
        let g_mean = gh.iter().sum::<f64>() / d as f64;
        let gx_mean = gh.iter().zip(&xh).map(|(a, b)| a * b).sum::<f64>() / d as f64;
        for j in 0..d {
            dx.push((gh[j] - g_mean - xh[j] * gx_mean) * inv);
            da[j] += g[j] * xh[j];
            da[d + j] += g[j];
        }
    }
    (dx, da)
}

fn add(a: &mut [f64], b: &[f64]) {
    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
}

/// What a Soft MoE block's forward keeps.
struct MoeTape {
    phi_scaled: Vec<f64>,
    /// Per example: X̂ (or X), D, C, X̃, the experts' pre-activations and activations per slot, Ỹ.
    xn: Vec<f64>,
    dispatch: Vec<f64>,
    combine: Vec<f64>,
    x_slots: Vec<f64>,
    pre: Vec<f64>,
    act: Vec<f64>,
    y_slots: Vec<f64>,
}

struct BlockTape {
    x: Vec<f64>,
    h0: Vec<f64>,
    qkv: Vec<f64>,
    att: Vec<f64>,
    x_mid: Vec<f64>,
    h2: Vec<f64>,
    /// Dense MLP: pre-activation and activation.
    pre: Vec<f64>,
    act: Vec<f64>,
    moe: Option<MoeTape>,
}

struct Tape {
    patches: Vec<f64>,
    blocks: Vec<BlockTape>,
    x_last: Vec<f64>,
    pooled: Vec<f64>,
    logits: Vec<f64>,
}

/// Sizes of a config's Soft MoE layer: (n, p, s = n·p, h).
fn moe_sizes(c: &VitConfig) -> (usize, usize, usize, usize) {
    (c.num_experts, c.slots_per_expert, c.num_experts * c.slots_per_expert, c.expert_mlp_dim)
}

fn check(c: &VitConfig, params: &[Vec<f64>], images: &[f64], labels: Option<&[u32]>) -> Result<(ParamLayout, usize)> {
    let layout = ParamLayout::new(c)?;
    if params.len() != layout.specs.len() || params.iter().zip(&layout.specs).any(|(p, s)| p.len() != s.len) {
        return Err(Error::input("parameters", "the tensors of the config's ParamLayout", "other tensors"));
    }
    let per_image = c.image_size * c.image_size * c.channels;
    if images.is_empty() || !images.len().is_multiple_of(per_image) {
        return Err(Error::input("images", format!("a multiple of {per_image} values"), images.len()));
    }
    let b = images.len() / per_image;
    if let Some(labels) = labels {
        if labels.len() != b {
            return Err(Error::input("labels", format!("{b} labels (one per image)"), labels.len()));
        }
        crate::kernels::cross_entropy::check_labels(labels, c.num_classes)?;
    }
    Ok((layout, b))
}

fn forward(c: &VitConfig, layout: &ParamLayout, p: &[Vec<f64>], images: &[f64], b: usize) -> Tape {
    let (m, d, pd) = (c.tokens(), c.hidden_size, c.patch_dim());
    let rows = b * m;
    let eps = c.layer_norm_eps as f64;
    let patches = patchify(images, b, c);
    let mut x = linear(&patches, rows, pd, d, &p[layout.embedding_kernel], &p[layout.embedding_bias]);
    for (i, v) in x.iter_mut().enumerate() {
        *v += p[layout.pos_embedding][i % (m * d)];
    }
    let mut blocks = Vec::new();
    for bp in &layout.blocks {
        let h0 = layer_norm(&x, d, &p[bp.ln0], eps);
        let qkv = linear(&h0, rows, d, 3 * d, &p[bp.qkv_kernel], &p[bp.qkv_bias]);
        let att = attention(&qkv, b, m, c.num_heads, c.head_dim());
        let mut x_mid = x.clone();
        add(&mut x_mid, &linear(&att, rows, d, d, &p[bp.out_kernel], &p[bp.out_bias]));
        let h2 = layer_norm(&x_mid, d, &p[bp.ln2], eps);
        let mut next = x_mid.clone();
        let (mut pre, mut act, mut moe) = (Vec::new(), Vec::new(), None);
        if bp.soft_moe {
            let (_, pp, s, h) = moe_sizes(c);
            let (_, phi_scaled) = router_scale(&p[bp.mlp], p[bp.mlp + 1][0], d, s, c.normalize);
            let (w0, b0, w1, b1) = (&p[bp.mlp + 2], &p[bp.mlp + 3], &p[bp.mlp + 4], &p[bp.mlp + 5]);
            let mut t = MoeTape {
                phi_scaled,
                xn: Vec::new(),
                dispatch: Vec::new(),
                combine: Vec::new(),
                x_slots: Vec::new(),
                pre: Vec::new(),
                act: Vec::new(),
                y_slots: Vec::new(),
            };
            for (e, xe) in h2.chunks(m * d).enumerate() {
                let xn = if c.normalize { l2_normalize(xe, m, d, d, 1) } else { xe.to_vec() };
                let l = matmul(&xn, &t.phi_scaled, m, d, s);
                let dm = dispatch_softmax(&l, m, s);
                let cm = combine_softmax(&l, m, s);
                let xs = matmul(&transpose(&dm, m, s), xe, s, m, d);
                let mut ys = Vec::with_capacity(s * d);
                for j in 0..s {
                    let ex = j / pp;
                    let z = linear(&xs[j * d..(j + 1) * d], 1, d, h, &w0[ex * d * h..(ex + 1) * d * h], &b0[ex * h..(ex + 1) * h]);
                    let a: Vec<f64> = z.iter().map(|&v| gelu(v, c.gelu)).collect();
                    ys.extend(linear(&a, 1, h, d, &w1[ex * h * d..(ex + 1) * h * d], &b1[ex * d..(ex + 1) * d]));
                    t.pre.extend(z);
                    t.act.extend(a);
                }
                let y = matmul(&cm, &ys, m, s, d);
                add(&mut next[e * m * d..(e + 1) * m * d], &y);
                t.xn.extend(xn);
                t.dispatch.extend(dm);
                t.combine.extend(cm);
                t.x_slots.extend(xs);
                t.y_slots.extend(ys);
            }
            moe = Some(t);
        } else {
            let f = c.mlp_dim;
            pre = linear(&h2, rows, d, f, &p[bp.mlp], &p[bp.mlp + 1]);
            act = pre.iter().map(|&v| gelu(v, c.gelu)).collect();
            add(&mut next, &linear(&act, rows, f, d, &p[bp.mlp + 2], &p[bp.mlp + 3]));
        }
        blocks.push(BlockTape { x, h0, qkv, att, x_mid, h2, pre, act, moe });
        x = next;
    }
    let xf = layer_norm(&x, d, &p[layout.norm], eps);
    let pooled = mean_pool(&xf, b, m, d);
    let logits = linear(&pooled, b, d, c.num_classes, &p[layout.head_kernel], &p[layout.head_bias]);
    Tape { patches, blocks, x_last: x, pooled, logits }
}

/// Logits [b, classes] of images [b, H, W, C] (flat) under f64 parameters in `ParamLayout` order.
pub fn vit_logits_f64(c: &VitConfig, params: &[Vec<f64>], images: &[f64]) -> Result<Vec<f64>> {
    let (layout, b) = check(c, params, images, None)?;
    Ok(forward(c, &layout, params, images, b).logits)
}

/// The mean over the batch of the label-smoothed cross-entropy.
pub fn vit_loss_f64(c: &VitConfig, params: &[Vec<f64>], images: &[f64], labels: &[u32], smoothing: f64) -> Result<f64> {
    let (layout, b) = check(c, params, images, Some(labels))?;
    let logits = forward(c, &layout, params, images, b).logits;
    Ok(cross_entropy(&logits, labels, c.num_classes, smoothing).iter().sum::<f64>() / b as f64)
}

/// The mean loss (as `vit_loss_f64`) and its gradient with respect to every parameter, in
/// `ParamLayout` order.
pub fn vit_gradients_f64(
    c: &VitConfig,
    params: &[Vec<f64>],
    images: &[f64],
    labels: &[u32],
    smoothing: f64,
) -> Result<(f64, Vec<Vec<f64>>)> {
    let (layout, b) = check(c, params, images, Some(labels))?;
    let p = params;
    let (m, d, pd, k) = (c.tokens(), c.hidden_size, c.patch_dim(), c.num_classes);
    let rows = b * m;
    let eps = c.layer_norm_eps as f64;
    let t = forward(c, &layout, p, images, b);
    let loss = cross_entropy(&t.logits, labels, k, smoothing).iter().sum::<f64>() / b as f64;
    let mut g: Vec<Vec<f64>> = layout.specs.iter().map(|s| vec![0.0; s.len]).collect();
    let d_logits = cross_entropy_backward(&t.logits, labels, k, smoothing);
    let (d_pooled, dw, db) = linear_backward(&t.pooled, b, d, k, &p[layout.head_kernel], &d_logits);
    g[layout.head_kernel] = dw;
    g[layout.head_bias] = db;
    let d_xf = mean_pool_backward(&d_pooled, b, m, d);
    let (mut gx, da) = layer_norm_backward(&t.x_last, d, &p[layout.norm], &d_xf, eps);
    g[layout.norm] = da;
    for (bp, bt) in layout.blocks.iter().zip(&t.blocks).rev() {
        // The MLP branch: gx is d loss / d (x_mid + MLP(LN2(x_mid))).
        let d_h2 = if let Some(mt) = &bt.moe {
            let (_, pp, s, h) = moe_sizes(c);
            let (w0, w1) = (&p[bp.mlp + 2], &p[bp.mlp + 4]);
            let mut d_phi = vec![0.0; d * s];
            let mut d_h2 = vec![0.0; rows * d];
            let (mut dw0, mut db0, mut dw1, mut db1) =
                (vec![0.0; w0.len()], vec![0.0; p[bp.mlp + 3].len()], vec![0.0; w1.len()], vec![0.0; p[bp.mlp + 5].len()]);
            for e in 0..b {
                let (ex_md, ex_ms, ex_sd, ex_sh) =
                    (e * m * d..(e + 1) * m * d, e * m * s..(e + 1) * m * s, e * s * d..(e + 1) * s * d, e * s * h..(e + 1) * s * h);
                let gy = &gx[ex_md.clone()];
                let (dm, cm) = (&mt.dispatch[ex_ms.clone()], &mt.combine[ex_ms.clone()]);
                let (xs, ys) = (&mt.x_slots[ex_sd.clone()], &mt.y_slots[ex_sd.clone()]);
                let d_c = matmul(gy, &transpose(ys, s, d), m, d, s);
                let d_ys = matmul(&transpose(cm, m, s), gy, s, m, d);
                let mut d_xs = vec![0.0; s * d];
                for j in 0..s {
                    let ex = j / pp;
                    let (pre, act) = (&mt.pre[ex_sh.clone()][j * h..(j + 1) * h], &mt.act[ex_sh.clone()][j * h..(j + 1) * h]);
                    let (w0e, w1e) = (&w0[ex * d * h..(ex + 1) * d * h], &w1[ex * h * d..(ex + 1) * h * d]);
                    let (d_act, dw, db) = linear_backward(act, 1, h, d, w1e, &d_ys[j * d..(j + 1) * d]);
                    add(&mut dw1[ex * h * d..(ex + 1) * h * d], &dw);
                    add(&mut db1[ex * d..(ex + 1) * d], &db);
                    let d_pre = gelu_backward(pre, &d_act, c.gelu);
                    let (dx, dw, db) = linear_backward(&xs[j * d..(j + 1) * d], 1, d, h, w0e, &d_pre);
                    add(&mut dw0[ex * d * h..(ex + 1) * d * h], &dw);
                    add(&mut db0[ex * h..(ex + 1) * h], &db);
                    d_xs[j * d..(j + 1) * d].copy_from_slice(&dx);
                }
                let xe = &bt.h2[ex_md.clone()];
                let d_d = matmul(xe, &transpose(&d_xs, s, d), m, d, s);
                let mut d_xe = matmul(dm, &d_xs, m, s, d);
                let mut d_l = dispatch_softmax_backward(dm, &d_d, m, s);
                add(&mut d_l, &combine_softmax_backward(cm, &d_c, m, s));
                let xn = &mt.xn[ex_md.clone()];
                add(&mut d_phi, &matmul(&transpose(xn, m, d), &d_l, d, m, s));
                let d_xn = matmul(&d_l, &transpose(&mt.phi_scaled, d, s), m, s, d);
                if c.normalize {
                    add(&mut d_xe, &l2_normalize_backward(xe, &d_xn, m, d, d, 1));
                } else {
                    add(&mut d_xe, &d_xn);
                }
                d_h2[ex_md].copy_from_slice(&d_xe);
            }
            let (d_mu, d_scale) = router_scale_backward(&p[bp.mlp], p[bp.mlp + 1][0], &d_phi, d, s, c.normalize);
            g[bp.mlp] = d_mu;
            g[bp.mlp + 1] = vec![d_scale];
            g[bp.mlp + 2] = dw0;
            g[bp.mlp + 3] = db0;
            g[bp.mlp + 4] = dw1;
            g[bp.mlp + 5] = db1;
            d_h2
        } else {
            let f = c.mlp_dim;
            let (d_act, dw, db) = linear_backward(&bt.act, rows, f, d, &p[bp.mlp + 2], &gx);
            g[bp.mlp + 2] = dw;
            g[bp.mlp + 3] = db;
            let d_pre = gelu_backward(&bt.pre, &d_act, c.gelu);
            let (d_h2, dw, db) = linear_backward(&bt.h2, rows, d, f, &p[bp.mlp], &d_pre);
            g[bp.mlp] = dw;
            g[bp.mlp + 1] = db;
            d_h2
        };
        let (dx, da) = layer_norm_backward(&bt.x_mid, d, &p[bp.ln2], &d_h2, eps);
        g[bp.ln2] = da;
        add(&mut gx, &dx);
        // The attention branch: gx is now d loss / d x_mid.
        let (d_att, dw, db) = linear_backward(&bt.att, rows, d, d, &p[bp.out_kernel], &gx);
        g[bp.out_kernel] = dw;
        g[bp.out_bias] = db;
        let d_qkv = attention_backward(&bt.qkv, &d_att, b, m, c.num_heads, c.head_dim());
        let (d_h0, dw, db) = linear_backward(&bt.h0, rows, d, 3 * d, &p[bp.qkv_kernel], &d_qkv);
        g[bp.qkv_kernel] = dw;
        g[bp.qkv_bias] = db;
        let (dx, da) = layer_norm_backward(&bt.x, d, &p[bp.ln0], &d_h0, eps);
        g[bp.ln0] = da;
        add(&mut gx, &dx);
    }
    let mut d_pos = vec![0.0; m * d];
    for (i, v) in gx.iter().enumerate() {
        d_pos[i % (m * d)] += v;
    }
    g[layout.pos_embedding] = d_pos;
    let (_, dw, db) = linear_backward(&t.patches, rows, pd, d, &p[layout.embedding_kernel], &gx);
    g[layout.embedding_kernel] = dw;
    g[layout.embedding_bias] = db;
    Ok((loss, g))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Gelu;
    use crate::random::Rng;
    use crate::reference::grad_check::check_gradient;
    use crate::reference::vit_forward;
    use crate::tensor::Tensor;
    use crate::weights::VitWeights;

    /// A small Soft MoE ViT: 8×8 images in 4×4 patches (4 tokens), d = 8, 2 blocks (the second
    /// Soft MoE with 3 experts × 2 slots), 3 classes.
    pub(crate) fn tiny_config(gelu: Gelu, normalize: bool) -> VitConfig {
        VitConfig {
            image_size: 8,
            channels: 1,
            patch_size: 4,
            hidden_size: 8,
            num_layers: 2,
            num_heads: 2,
            mlp_dim: 12,
            num_classes: 3,
            moe_layers: vec![1],
            num_experts: 3,
            slots_per_expert: 2,
            expert_mlp_dim: 5,
            gelu,
            normalize,
            layer_norm_eps: 1e-6,
            class_names: Vec::new(),
            router: None,
            group_size: 0,
            attention_qk_norm: false,
            classifier: crate::config::Pooling::Gap,
            dispatch_bfloat16: false,
            moe_variant: crate::config::SoftMoeVariant::Vmoe,
        }
    }

    /// Random parameters of the config's layout, LayerNorm scales near 1.
    pub(crate) fn random_params(c: &VitConfig, rng: &mut Rng) -> Vec<Vec<f64>> {
        let layout = ParamLayout::new(c).unwrap();
        layout
            .specs
            .iter()
            .map(|s| {
                let mut v: Vec<f64> = rng.vec(s.len, 0.6).into_iter().map(f64::from).collect();
                if s.name.ends_with("LayerNorm_0") || s.name.ends_with("LayerNorm_2") || s.name.ends_with("encoder_norm") {
                    v[..s.len / 2].iter_mut().for_each(|x| *x += 1.0);
                }
                if s.name.ends_with("Router/scale") {
                    v[0] = 1.5;
                }
                v
            })
            .collect()
    }

    #[test]
    fn the_f64_training_forward_is_the_inference_reference() {
        let mut rng = Rng::new(500);
        let c = tiny_config(Gelu::Tanh, true);
        let p32: Vec<Vec<f32>> = random_params(&c, &mut rng).iter().map(|v| v.iter().map(|&x| x as f32).collect()).collect();
        let p64: Vec<Vec<f64>> = p32.iter().map(|v| v.iter().map(|&x| x as f64).collect()).collect();
        let w = VitWeights::from_params(c.clone(), &p32).unwrap();
        let images: Vec<f32> = rng.vec(3 * 64, 0.5).into_iter().map(|v| v + 0.5).collect();
        let want = vit_forward(&w, &Tensor::new(vec![3, 8, 8], images.clone()).unwrap()).unwrap().logits;
        let got = vit_logits_f64(&c, &p64, &images.iter().map(|&v| v as f64).collect::<Vec<_>>()).unwrap();
        let d = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        assert!(d < 1e-12, "logits differ by {d}");
    }

    #[test]
    fn every_gradient_is_the_slope_of_the_loss() {
        let mut rng = Rng::new(501);
        for (gelu, normalize, smoothing) in [(Gelu::Tanh, true, 0.1), (Gelu::Erf, false, 0.0)] {
            let c = tiny_config(gelu, normalize);
            let layout = ParamLayout::new(&c).unwrap();
            let params = random_params(&c, &mut rng);
            let images: Vec<f64> = rng.vec(2 * 64, 0.5).into_iter().map(|v| v as f64 + 0.5).collect();
            let labels = [2, 0];
            let (loss, grads) = vit_gradients_f64(&c, &params, &images, &labels, smoothing).unwrap();
            assert!((loss - vit_loss_f64(&c, &params, &images, &labels, smoothing).unwrap()).abs() < 1e-15);
            for (i, spec) in layout.specs.iter().enumerate() {
                let f = |v: &[f64]| {
                    let mut q = params.clone();
                    q[i] = v.to_vec();
                    vit_loss_f64(&c, &q, &images, &labels, smoothing).unwrap()
                };
                check_gradient(&format!("{} ({gelu:?}, normalize {normalize})", spec.name), &params[i], f, &grads[i], 2e-6);
            }
        }
    }
}
