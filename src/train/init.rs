//! Fresh weights for a config, initialised exactly as the candle trainer initialises them (the same
//! generator, the same order, the same distributions), so that a seed gives the same model here and
//! in trainer/: Xavier-uniform dense kernels, LeCun-normal patch embedding and router mu, N(0, 0.02)
//! position embedding, zero biases and head, ones for LayerNorm scales and the router scale.

use std::collections::BTreeMap;

use crate::config::VitConfig;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::weights::safetensors::serialize;
use crate::weights::{vit_tensor_shapes, SafeTensors, VitWeights};

/// The trainer's generator: SplitMix64 from seed ^ 0x9E37_79B9_7F4A_7C15 (trainer/src/model.rs).
pub struct TrainRng(crate::random::Rng);

impl TrainRng {
    pub fn new(seed: u64) -> Self {
        TrainRng(crate::random::Rng::new(seed ^ 0x9E37_79B9_7F4A_7C15))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Fisher–Yates, from the back.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// The initial values of tensor `name` (of `shape`), drawn from `rng` in the trainers' order.
pub fn init_values(name: &str, shape: &[usize], c: &VitConfig, rng: &mut TrainRng) -> Result<Vec<f32>> {
    let numel: usize = shape.iter().product();
    let d = c.hidden_size;
    let xavier = |rng: &mut TrainRng, fan_in: usize, fan_out: usize| -> Vec<f32> {
        let lim = (6.0 / (fan_in + fan_out) as f64).sqrt();
        (0..numel).map(|_| ((rng.uniform() * 2.0 - 1.0) * lim) as f32).collect()
    };
    if name.ends_with("/scale") {
        return Ok(vec![1.0; numel]);
    }
    if name.ends_with("bias") || name == "head/kernel" {
        return Ok(vec![0.0; numel]);
    }
    let normal = |rng: &mut TrainRng, std: f64| -> Vec<f32> { (0..numel).map(|_| (rng.normal() * std) as f32).collect() };
    if name == "embedding/kernel" {
        return Ok(normal(rng, 1.0 / (c.patch_dim() as f64).sqrt()));
    }
    if name.ends_with("pos_embedding") {
        return Ok(normal(rng, 0.02));
    }
    if name.ends_with("Router/mu") {
        return Ok(normal(rng, 1.0 / (d as f64).sqrt()));
    }
    if name.ends_with("/kernel") {
        let (fi, fo) = match shape.len() {
            2 => (shape[0], shape[1]),
            3 if name.contains("Moe/Mlp") => (shape[1], shape[2]),
            3 if name.ends_with("out/kernel") => (shape[0] * shape[1], shape[2]),
            3 => (shape[0], shape[1] * shape[2]),
            _ => (d, d),
        };
        return Ok(xavier(rng, fi, fo));
    }
    Err(Error::Internal(format!("no initialiser for `{name}`")))
}

/// Fresh weights for `c` from `seed` (the candle trainer's for the same seed).
pub fn init_weights(c: &VitConfig, seed: u64) -> Result<VitWeights> {
    crate::weights::params::ParamLayout::new(c)?;
    let mut rng = TrainRng::new(seed);
    let mut tensors = Vec::new();
    for (name, shape) in vit_tensor_shapes(c) {
        let data = init_values(&name, &shape, c, &mut rng)?;
        tensors.push((name, Tensor { shape, data }));
    }
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let st = SafeTensors::parse(serialize(&refs, &BTreeMap::new()), "initial weights")?;
    VitWeights::from_parts(c.clone(), &st)
}
