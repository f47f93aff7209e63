//! Seeded pseudo-random layers and inputs for tests, examples and benchmarks (no `rand` dependency).

use crate::layers::Gelu;
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
    }
}

/// A random input [b, m, d] uniform in [-1, 1).
pub fn random_input(rng: &mut Rng, b: usize, m: usize, d: usize) -> Tensor {
    Tensor {
        shape: vec![b, m, d],
        data: rng.vec(b * m * d, 1.0),
    }
}
