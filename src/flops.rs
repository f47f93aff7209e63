//! Work counts, in one place, for the benchmarks and the README: a multiply and an add are two
//! FLOPs; exp, division, square root and tanh count one each; bytes are the least a kernel must
//! move (each input read once, each output written once, f32).

use crate::config::{Pooling, VitConfig};
use crate::kernels::gemm::Matmul;
use crate::routing::Router;

/// FLOPs of one Soft MoE layer on b examples of m tokens: normalisation (3 per value), the logits
/// GEMM, both softmaxes (4 per logit each: subtract, exp, add, divide), Dᵀ X, both expert Dense
/// layers with bias and GELU (~8 per hidden value), and C Ỹ.
pub fn soft_moe_flops(d: usize, n: usize, p: usize, h: usize, b: usize, m: usize) -> u64 {
    let (d, s, h, b, m) = (d as u64, (n * p) as u64, h as u64, b as u64, m as u64);
    b * (3 * m * d + 2 * m * d * s + 8 * m * s + 2 * s * m * d + s * (2 * d * h + 9 * h) + s * (2 * h * d + d) + 2 * m * s * d)
}

/// FLOPs of one sparse MoE layer (Tokens or Experts Choice) per image of m tokens, in full routing
/// groups of `group` images: router logits and softmax, both expert Dense layers on every slot of the
/// experts' buffers (n·capacity per group, capacity by the router's rule, vmoe's `compute_capacity`:
/// the GEMMs run on the whole buffer, filled or not), and the gate-weighted sum of the routed outputs.
pub fn sparse_moe_flops_per_image(d: usize, n: usize, h: usize, router: &Router, group: usize, m: usize) -> u64 {
    let slots = (n * router.capacity(group * m, n)) as u64;
    let (d, n, h, m, g) = (d as u64, n as u64, h as u64, m as u64, group.max(1) as u64);
    let router_flops = 2 * m * d * n + 4 * m * n;
    router_flops + slots * (2 * d * h + 9 * h + 2 * h * d + d + 2 * d) / g
}

/// Bytes one Soft MoE forward must move: weights once, x in, y out.
pub fn soft_moe_bytes(d: usize, n: usize, p: usize, h: usize, b: usize, m: usize) -> u64 {
    let weights = d * n * p + n * (2 * d * h + h + d);
    4 * (weights + 2 * b * m * d) as u64
}

/// The least bytes a GEMM moves: A and B read once (B at 2 bytes per value when stored as f16),
/// C written once (and read too when the GEMM adds into it), the bias read once.
pub fn gemm_bytes(mm: &Matmul) -> u64 {
    let b_bytes = if mm.b_f16 { 2 } else { 4 };
    let c_passes = if mm.accumulate { 2 } else { 1 };
    let bias = if mm.bias_batch_stride.is_some() { mm.n } else { 0 };
    (mm.batch * (4 * mm.m * mm.k + b_bytes * mm.k * mm.n + 4 * c_passes * mm.m * mm.n + 4 * bias)) as u64
}

/// Bytes a ViT forward of `b` images must move: every weight once, the images in, the logits out.
pub fn vit_bytes(c: &VitConfig, b: usize) -> u64 {
    let weights: usize = crate::weights::vit_tensor_shapes(c).iter().map(|(_, s)| s.iter().product::<usize>()).sum();
    4 * (weights + b * (c.image_size * c.image_size * c.channels + c.num_classes)) as u64
}

/// Forward FLOPs of the ViT for one image.
pub fn vit_flops_per_image(c: &VitConfig) -> u64 {
    let (m, d, pd) = (c.seq_len() as u64, c.hidden_size as u64, c.patch_dim() as u64);
    let patches = c.tokens() as u64;
    let layer_norm = 8 * m * d;
    let attention = 2 * m * d * 3 * d + 2 * m * m * d * 2 + 5 * m * m * c.num_heads as u64 + 2 * m * d * d;
    let dense_mlp = 2 * m * d * c.mlp_dim as u64 * 2 + 9 * m * c.mlp_dim as u64;
    let mut total = 2 * patches * pd * d + 2 * m * d;
    for k in 0..c.num_layers {
        total += 2 * layer_norm + attention + 2 * m * d;
        total += match (c.is_moe(k), &c.router) {
            (true, Some(r)) => sparse_moe_flops_per_image(c.hidden_size, c.num_experts, c.expert_mlp_dim, r, c.group_size, c.seq_len()),
            (true, None) => soft_moe_flops(c.hidden_size, c.num_experts, c.slots_per_expert, c.expert_mlp_dim, 1, c.seq_len()),
            (false, _) => dense_mlp,
        };
    }
    // The MAP head: k and v of every token, one query's attention, the output projection, a
    // LayerNorm and the MLP on one row.
    let pooling = match c.classifier {
        Pooling::Gap => m * d,
        Pooling::Token => 0,
        Pooling::Map => {
            let mlp = c.mlp_dim as u64;
            2 * m * d * 2 * d + 4 * m * d + 5 * m * c.num_heads as u64 + 2 * d * d + 8 * d + 4 * d * mlp + 9 * mlp + d
        }
    };
    total + layer_norm + pooling + 2 * d * c.num_classes as u64
}

/// Forward FLOPs of the ViT for one image counting matrix products only, 2 per multiply-add: the
/// patch embedding, the q/k/v/out projections, the attention scores QKᵀ and the weighted sum AV, the
/// dense MLPs, in Soft MoE blocks the router logits X̂Φ̂, the dispatch DᵀX, the experts' two Dense
/// layers on the n·p slots and the combine CỸ, in sparse blocks the router logits and the experts on
/// the group's n·capacity slots (per image), and the head. Element-wise work (biases, LayerNorm,
/// softmax, GELU, normalisation, residuals, pooling) is left out. The trainer records this count as
/// config.json's `training.flops_per_image`.
pub fn vit_gemm_flops_per_image(c: &VitConfig) -> u64 {
    let (m, d, mlp, h) = (c.seq_len() as u64, c.hidden_size as u64, c.mlp_dim as u64, c.expert_mlp_dim as u64);
    let n = c.num_experts as u64;
    let slots = n * c.slots_per_expert as u64;
    let mac = |a: u64, b: u64, c: u64| 2 * a * b * c;
    let mut f = mac(c.tokens() as u64, c.patch_dim() as u64, d);
    for k in 0..c.num_layers {
        f += 4 * mac(m, d, d); // q, k, v, out projections
        f += 2 * mac(m, m, d); // QKᵀ over all heads, then AV
        f += match (c.is_moe(k), &c.router) {
            (true, Some(r)) => {
                let per_image = n * r.capacity(c.group_size * c.seq_len(), c.num_experts) as u64 / c.group_size.max(1) as u64;
                mac(m, d, n) + mac(per_image, d, h) + mac(per_image, h, d)
            }
            (true, None) => mac(m, d, slots) + mac(slots, m, d) + mac(slots, d, h) + mac(slots, h, d) + mac(m, slots, d),
            (false, _) => mac(m, d, mlp) + mac(m, mlp, d),
        };
    }
    if c.classifier == Pooling::Map {
        // k and v of every token, the probe's QKᵀ and AV, the output projection and the MLP (the
        // probe's own query projection is input-independent).
        f += 2 * mac(m, d, d) + 2 * mac(1, m, d) + mac(1, d, d) + 2 * mac(1, d, mlp);
    }
    f + mac(1, d, c.num_classes as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn soft_moe_flops_are_dominated_by_the_expert_gemms_at_vit_s_size() {
        // ViT-S/16 layer: 128 one-slot experts of 384→1536→384 on 196 tokens.
        let total = soft_moe_flops(384, 128, 1, 1536, 1, 196);
        let experts = 128 * 4 * 384 * 1536;
        assert!(total > experts && (total - experts) < total / 3, "{total}");
    }

    #[test]
    fn sparse_layers_count_the_experts_on_their_whole_buffers() {
        // Tokens Choice, k = 1, capacity factor 1, capacities not rounded (the shipped models'
        // rule): a group of 8 images of 49 tokens gives each of 8 experts ⌈392/8⌉ = 49 slots, i.e.
        // 49 expert rows per image, as many as the image's tokens.
        let r = Router::TokensChoice { k: 1, capacity_factor: 1.0, capacity_multiple_of: 1 };
        let (d, n, h, m) = (64u64, 8u64, 128u64, 49u64);
        let router = 2 * m * d * n + 4 * m * n;
        let row = 4 * d * h + 9 * h + 3 * d;
        assert_eq!(sparse_moe_flops_per_image(64, 8, 128, &r, 8, 49), router + 49 * row);
        // vmoe's default rounds the capacity up to 52 (a multiple of 4): 8·52/8 = 52 rows per image.
        let vmoe = Router::tokens_choice(1, 1.0);
        assert_eq!(sparse_moe_flops_per_image(64, 8, 128, &vmoe, 8, 49), router + 52 * row);
        // Experts Choice with capacity factor 2 doubles the expert rows.
        let ec = Router::ExpertsChoice { capacity_factor: 2.0, capacity_multiple_of: 1 };
        assert_eq!(sparse_moe_flops_per_image(64, 8, 128, &ec, 8, 49) - router, 2 * 49 * row);
    }

    /// The shipped configs and what the trainer recorded in each one's `training` object.
    fn shipped() -> Vec<(String, VitConfig, serde_json::Value)> {
        ["dense-vit", "soft-moe-vit", "tokens-choice-vit", "experts-choice-vit"]
            .iter()
            .map(|name| {
                let path = format!("{}/weights/{name}/config.json", env!("CARGO_MANIFEST_DIR"));
                let text = std::fs::read_to_string(&path).unwrap();
                let training = serde_json::from_str::<serde_json::Value>(&text).unwrap()["training"].clone();
                (name.to_string(), VitConfig::from_json(&text, &path).unwrap(), training)
            })
            .collect()
    }

    #[test]
    fn gemm_flops_are_the_counts_the_shipped_configs_record() {
        for (name, c, training) in shipped() {
            assert_eq!(Some(vit_gemm_flops_per_image(&c)), training["flops_per_image"].as_u64(), "{name}");
        }
    }

    #[test]
    fn gemm_flops_count_every_matrix_product() {
        let shipped = shipped();
        let (dense, soft) = (&shipped[0].1, &shipped[1].1);
        let (m, d, mlp, layers) = (49u64, 64u64, 128u64, 4u64);
        let attention = 4 * 2 * m * d * d + 2 * 2 * m * m * d;
        let dense_mlp = 2 * 2 * m * d * mlp;
        let want_dense = 2 * m * 16 * d + layers * (attention + dense_mlp) + 2 * d * 10;
        assert_eq!(vit_gemm_flops_per_image(dense), want_dense);
        // Two Soft MoE blocks of 8 experts × 2 slots: logits, DᵀX, the experts on 16 slots, CỸ.
        let s = 16u64;
        let moe_mlp = 2 * m * d * s + 2 * s * m * d + 2 * 2 * s * d * mlp + 2 * m * s * d;
        assert_eq!(vit_gemm_flops_per_image(soft), want_dense - 2 * dense_mlp + 2 * moe_mlp);
    }
}
