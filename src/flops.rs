//! Work counts, in one place, for the benchmarks and the README: a multiply and an add are two
//! FLOPs; exp, division, square root and tanh count one each; bytes are the least a kernel must
//! move (each input read once, each output written once, f32).

use crate::kernels::matmul::Matmul;
use crate::model::VitConfig;
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

/// The least bytes a GEMM moves: A and B read once, C written once.
pub fn gemm_bytes(mm: &Matmul) -> u64 {
    4 * (mm.batch * (mm.m * mm.k + mm.k * mm.n + mm.m * mm.n)) as u64
}

/// Forward FLOPs of the ViT for one image.
pub fn vit_flops_per_image(c: &VitConfig) -> u64 {
    let (m, d, pd) = (c.tokens() as u64, c.hidden_size as u64, c.patch_dim() as u64);
    let layer_norm = 8 * m * d;
    let attention = 2 * m * d * 3 * d + 2 * m * m * d * 2 + 5 * m * m * c.num_heads as u64 + 2 * m * d * d;
    let dense_mlp = 2 * m * d * c.mlp_dim as u64 * 2 + 9 * m * c.mlp_dim as u64;
    let mut total = 2 * m * pd * d + 2 * m * d;
    for k in 0..c.num_layers {
        total += 2 * layer_norm + attention + 2 * m * d;
        total += match (c.is_moe(k), &c.router) {
            (true, Some(r)) => sparse_moe_flops_per_image(c.hidden_size, c.num_experts, c.expert_mlp_dim, r, c.group_size, c.tokens()),
            (true, None) => soft_moe_flops(c.hidden_size, c.num_experts, c.slots_per_expert, c.expert_mlp_dim, 1, c.tokens()),
            (false, _) => dense_mlp,
        };
    }
    total + layer_norm + m * d + 2 * d * c.num_classes as u64
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
}
