//! Writes a seeded random Soft MoE layer and input as safetensors, for `softmoe layer`.
//!
//! cargo run --release --example random_layer -- OUT_DIR b m d n p h [scale] [seed]

use std::collections::BTreeMap;

use softmoe::random::{random_input, random_layer, LayerShape, Rng};
use softmoe::weights::safetensors::serialize;
use softmoe::Gelu;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 7 {
        return Err("usage: random_layer OUT_DIR b m d n p h [scale] [seed]".into());
    }
    let num = |i: usize| args[i].parse::<usize>();
    let (b, m, d, n, p, h) = (num(1)?, num(2)?, num(3)?, num(4)?, num(5)?, num(6)?);
    let scale: f32 = args.get(7).map(|s| s.parse()).transpose()?.unwrap_or(1.0);
    let seed: u64 = args.get(8).map(|s| s.parse()).transpose()?.unwrap_or(0);
    let mut rng = Rng::new(seed);
    let shape = LayerShape { d, n, p, h, scale, gelu: Gelu::Tanh, normalize: true };
    let layer = random_layer(&mut rng, shape);
    let x = random_input(&mut rng, b, m, d);
    let dir = std::path::Path::new(&args[0]);
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("layer.safetensors"), layer.to_safetensors())?;
    std::fs::write(dir.join("input.safetensors"), serialize(&[("x", &x)], &BTreeMap::new()))?;
    println!("wrote {}/layer.safetensors and input.safetensors", dir.display());
    Ok(())
}
