//! `patchify` against its f64 reference: a copy, so exact.

use super::op;
use super::reference::patchify;
use crate::config::{Gelu, VitConfig};
use crate::random::Rng;
use crate::testing::{assert_bits, run_and_read, shared_context, to_f64, upload};

fn config(image_size: usize, channels: usize, patch_size: usize) -> VitConfig {
    VitConfig {
        image_size,
        channels,
        patch_size,
        hidden_size: 8,
        num_layers: 1,
        num_heads: 2,
        mlp_dim: 16,
        num_classes: 10,
        moe_layers: Vec::new(),
        num_experts: 1,
        slots_per_expert: 1,
        expert_mlp_dim: 16,
        gelu: Gelu::Tanh,
        normalize: true,
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

#[test]
fn cuts_patches_in_grid_and_channel_order() {
    let mut rng = Rng::new(100);
    let ctx = shared_context();
    for (image, channels, patch, b) in [(28, 1, 4, 3), (12, 3, 3, 2), (5, 2, 5, 1), (28, 1, 7, 5)] {
        let c = config(image, channels, patch);
        let img = rng.vec(b * image * image * channels, 1.0);
        let len = b * c.tokens() * c.patch_dim();
        let (src, dst) = (upload(&ctx, &img), upload(&ctx, &vec![0.0; len]));
        let got = run_and_read(&ctx, &[&op(&ctx, &src, &dst, b, &c).unwrap()], &dst, len);
        assert_bits(&format!("{image}x{image}x{channels} patch {patch}"), &got, &patchify(&to_f64(&img), b, &c));
    }
}
