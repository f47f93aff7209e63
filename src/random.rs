//! Seeded pseudo-random layers and inputs for tests, examples and benchmarks (no `rand` dependency).

use crate::config::{Gelu, SoftMoeVariant};
use crate::tensor::Tensor;
use crate::weights::SoftMoeWeights;

/// SplitMix64: small, seeded, reproducible on every platform.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform integer in [lo, hi].
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// `len` values uniform in [-amp, amp).
    pub fn vec(&mut self, len: usize, amp: f32) -> Vec<f32> {
        (0..len).map(|_| self.uniform() * amp).collect()
    }
}

/// Sizes and options of a random layer.
#[derive(Clone, Copy, Debug)]
pub struct LayerShape {
    pub d: usize,
    pub n: usize,
    pub p: usize,
    pub h: usize,
    pub scale: f32,
    pub gelu: Gelu,
    pub normalize: bool,
}

/// A random layer with weights scaled like a trained one (uniform fan-in initialisation).
pub fn random_layer(rng: &mut Rng, s: LayerShape) -> SoftMoeWeights {
    let LayerShape { d, n, p, h, .. } = s;
    SoftMoeWeights {
        d,
        n,
        p,
        h,
        mu: rng.vec(d * n * p, 1.0),
        scale: s.scale,
        w0: rng.vec(n * d * h, (3.0 / d as f32).sqrt()),
        b0: rng.vec(n * h, 0.1),
        w1: rng.vec(n * h * d, (3.0 / h as f32).sqrt()),
        b1: rng.vec(n * d, 0.1),
        gelu: s.gelu,
        normalize: s.normalize,
        dispatch_bfloat16: false,
        variant: SoftMoeVariant::Vmoe,
        norm_scale: Vec::new(),
        slot_norm_scale: Vec::new(),
    }
}

/// A random layer of the soft-moe-pytorch variant (`SoftMoeVariant::SoftMoePytorch`): `random_layer`'s
/// weights and erf GELU, RMSNorm scales around 1 as training leaves them (1 ± 0.5), no logit scale.
pub fn random_pytorch_layer(rng: &mut Rng, d: usize, n: usize, p: usize, h: usize) -> SoftMoeWeights {
    let base = random_layer(rng, LayerShape { d, n, p, h, scale: 1.0, gelu: Gelu::Erf, normalize: true });
    let mut gammas = || rng.vec(d, 0.5).into_iter().map(|v| 1.0 + v).collect::<Vec<f32>>();
    SoftMoeWeights { variant: SoftMoeVariant::SoftMoePytorch, norm_scale: gammas(), slot_norm_scale: gammas(), ..base }
}

/// A random input [b, m, d] uniform in [-1, 1).
pub fn random_input(rng: &mut Rng, b: usize, m: usize, d: usize) -> Tensor {
    Tensor { shape: vec![b, m, d], data: rng.vec(b * m * d, 1.0) }
}

/// A random ViT for `config`, with LayerNorm scales near 1 and fan-in scaled kernels.
pub fn random_vit(rng: &mut Rng, config: &crate::config::VitConfig) -> crate::weights::VitWeights {
    use crate::weights::{BlockMlp, BlockWeights, VitWeights};
    let c = config;
    let (d, m, pd) = (c.hidden_size, c.seq_len(), c.patch_dim());
    let fan = |rng: &mut Rng, fan_in: usize, len: usize| rng.vec(len, (3.0 / fan_in as f32).sqrt());
    let near_one = |rng: &mut Rng, len: usize| rng.vec(len, 0.2).into_iter().map(|v| 1.0 + v).collect::<Vec<f32>>();
    let blocks = (0..c.num_layers)
        .map(|k| BlockWeights {
            ln0_scale: near_one(rng, d),
            ln0_bias: rng.vec(d, 0.1),
            qkv_kernel: fan(rng, d, 3 * d * d),
            qkv_bias: rng.vec(3 * d, 0.1),
            out_kernel: fan(rng, d, d * d),
            out_bias: rng.vec(d, 0.1),
            qk_norm: c
                .attention_qk_norm
                .then(|| crate::weights::QkNorm { query: near_one(rng, c.head_dim()), key: near_one(rng, c.head_dim()) }),
            ln2_scale: near_one(rng, d),
            ln2_bias: rng.vec(d, 0.1),
            mlp: if let (true, Some(router)) = (c.is_moe(k), c.router) {
                let (n, h) = (c.num_experts, c.expert_mlp_dim);
                BlockMlp::Sparse(crate::weights::SparseMoeWeights {
                    d,
                    n,
                    h,
                    router,
                    group_size: c.group_size,
                    wr: fan(rng, d, d * n),
                    w0: fan(rng, d, n * d * h),
                    b0: rng.vec(n * h, 0.1),
                    w1: fan(rng, h, n * h * d),
                    b1: rng.vec(n * d, 0.1),
                    gelu: c.gelu,
                    dispatch_bfloat16: c.dispatch_bfloat16,
                })
            } else if c.is_moe(k) {
                let shape = LayerShape {
                    d,
                    n: c.num_experts,
                    p: c.slots_per_expert,
                    h: c.expert_mlp_dim,
                    scale: 5.0,
                    gelu: c.gelu,
                    normalize: c.normalize,
                };
                let layer = match c.moe_variant {
                    SoftMoeVariant::Vmoe => random_layer(rng, shape),
                    SoftMoeVariant::SoftMoePytorch => {
                        SoftMoeWeights { gelu: c.gelu, ..random_pytorch_layer(rng, d, shape.n, shape.p, shape.h) }
                    }
                };
                BlockMlp::SoftMoe(SoftMoeWeights { dispatch_bfloat16: c.dispatch_bfloat16, ..layer })
            } else {
                BlockMlp::Dense {
                    w0: fan(rng, d, d * c.mlp_dim),
                    b0: rng.vec(c.mlp_dim, 0.1),
                    w1: fan(rng, c.mlp_dim, c.mlp_dim * d),
                    b1: rng.vec(d, 0.1),
                }
            },
        })
        .collect();
    let qk_norm = |rng: &mut Rng| {
        c.attention_qk_norm.then(|| crate::weights::QkNorm { query: near_one(rng, c.head_dim()), key: near_one(rng, c.head_dim()) })
    };
    let map_head = (c.classifier == crate::config::Pooling::Map).then(|| {
        Box::new(crate::weights::MapHeadWeights {
            probe: rng.vec(d, 1.0),
            qkv_kernel: fan(rng, d, 3 * d * d),
            qkv_bias: rng.vec(3 * d, 0.1),
            out_kernel: fan(rng, d, d * d),
            out_bias: rng.vec(d, 0.1),
            qk_norm: qk_norm(rng),
            ln_scale: near_one(rng, d),
            ln_bias: rng.vec(d, 0.1),
            w0: fan(rng, d, d * c.mlp_dim),
            b0: rng.vec(c.mlp_dim, 0.1),
            w1: fan(rng, c.mlp_dim, c.mlp_dim * d),
            b1: rng.vec(d, 0.1),
        })
    });
    VitWeights {
        config: c.clone(),
        embedding_kernel: fan(rng, pd, pd * d),
        embedding_bias: rng.vec(d, 0.1),
        cls: (c.classifier == crate::config::Pooling::Token).then(|| rng.vec(d, 1.0)),
        pos_embedding: rng.vec(m * d, 0.5),
        blocks,
        map_head,
        names: crate::weights::BlockNames::Vit,
        norm_scale: near_one(rng, d),
        norm_bias: rng.vec(d, 0.1),
        head_kernel: fan(rng, d, d * c.num_classes),
        head_bias: rng.vec(c.num_classes, 0.1),
    }
}
