//! The ViT's own kernels against their f64 references, at shapes that do not divide the workgroup.

use softmoe::kernels::{add_position, attention, layer_norm, mean_pool, patchify};
use softmoe::reference as r;

use crate::common::{assert_bits, assert_close, ctx, run_and_read, to_f64, upload, vit_config, Rng};

#[test]
fn patchify_cuts_patches_in_grid_and_channel_order() {
    let mut rng = Rng::new(100);
    for (image, channels, patch, b) in [(28, 1, 4, 3), (12, 3, 3, 2), (5, 2, 5, 1), (28, 1, 7, 5)] {
        let c = vit_config(image, channels, patch, 8, 1, 2, &[], 1, 1);
        let img = rng.vec(b * image * image * channels, 1.0);
        let len = b * c.tokens() * c.patch_dim();
        let (src, dst) = (upload(&img), upload(&vec![0.0; len]));
        let got = run_and_read(&[&patchify::op(&ctx(), &src, &dst, b, &c).unwrap()], &dst, len);
        // A copy: exact.
        assert_bits(&format!("{image}x{image}x{channels} patch {patch}"), &got, &r::patchify(&to_f64(&img), b, &c));
    }
}

#[test]
fn position_embedding_is_added_to_every_image() {
    let mut rng = Rng::new(101);
    let (b, period) = (5, 49 * 13);
    let (pos, x) = (rng.vec(period, 1.0), rng.vec(b * period, 1.0));
    let (pb, xb) = (upload(&pos), upload(&x));
    let got = run_and_read(&[&add_position::op(&ctx(), &pb, &xb, b * period, period).unwrap()], &xb, b * period);
    let want: Vec<f64> = x.iter().enumerate().map(|(i, &v)| (v + pos[i % period]) as f64).collect();
    assert_bits("position", &got, &want);
}

#[test]
fn layer_norm_matches_at_odd_widths() {
    let mut rng = Rng::new(102);
    for (rows, d) in [(1, 1), (3, 7), (65, 64), (130, 97)] {
        let x: Vec<f32> = rng.vec(rows * d, 3.0).into_iter().map(|v| v + 2.0).collect();
        let (scale, bias) = (rng.vec(d, 1.5), rng.vec(d, 0.5));
        let (xb, ab, yb) = (upload(&x), upload(&[scale.clone(), bias.clone()].concat()), upload(&vec![0.0; rows * d]));
        let got = run_and_read(&[&layer_norm::op(&ctx(), &xb, &ab, &yb, rows, d, 1e-6).unwrap()], &yb, rows * d);
        let want = r::layer_norm(&to_f64(&x), d, &scale, &bias, 1e-6);
        // d = 1 has zero variance: the output is the bias, up to eps.
        assert_close(&format!("layer norm {rows}x{d}"), &got, &want, 1e-5);
    }
}

#[test]
fn attention_matches_at_several_head_shapes() {
    let mut rng = Rng::new(103);
    for (b, m, heads, hd) in [(1, 1, 1, 1), (2, 49, 4, 16), (3, 17, 3, 5), (1, 70, 2, 33)] {
        let d = heads * hd;
        let qkv = rng.vec(b * m * 3 * d, 1.5);
        let (qb, ob) = (upload(&qkv), upload(&vec![0.0; b * m * d]));
        let got = run_and_read(&[&attention::op(&ctx(), &qb, &ob, b, m, heads, hd).unwrap()], &ob, b * m * d);
        assert_close(
            &format!("attention b{b} m{m} {heads}x{hd}"),
            &got,
            &r::attention(&to_f64(&qkv), b, m, heads, hd),
            2e-6 * (1.0 + hd as f64).sqrt(),
        );
    }
}

#[test]
fn mean_pool_matches() {
    let mut rng = Rng::new(104);
    for (b, m, d) in [(1, 1, 1), (3, 49, 64), (2, 67, 5)] {
        let x = rng.vec(b * m * d, 1.0);
        let (xb, pb) = (upload(&x), upload(&vec![0.0; b * d]));
        let got = run_and_read(&[&mean_pool::op(&ctx(), &xb, &pb, b, m, d).unwrap()], &pb, b * d);
        assert_close(&format!("mean pool {b}x{m}x{d}"), &got, &r::mean_pool(&to_f64(&x), b, m, d), 1e-6);
    }
}
