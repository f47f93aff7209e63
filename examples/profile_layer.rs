//! GPU time of each dispatch of one Soft MoE forward (timestamp queries), for a layer shape.
//!
//! cargo run --release --example profile_layer -- b m d n p h

use softmoe::random::{random_input, random_layer, LayerShape, Rng};
use softmoe::{Gelu, GpuContext, SoftMoe};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let v: Vec<usize> = std::env::args().skip(1).map(|a| a.parse()).collect::<Result<_, _>>()?;
    let [b, m, d, n, p, h] = v[..] else {
        return Err("usage: profile_layer b m d n p h".into());
    };
    let ctx = pollster::block_on(GpuContext::new())?;
    let mut rng = Rng::new(0);
    let w = random_layer(&mut rng, LayerShape { d, n, p, h, scale: 1.0, gelu: Gelu::Tanh, normalize: true });
    let layer = pollster::block_on(SoftMoe::new(ctx.clone(), &w))?;
    let x = random_input(&mut rng, b, m, d);
    pollster::block_on(layer.profile(&x))?;
    let times = pollster::block_on(layer.profile(&x))?.ok_or("this adapter has no timestamp queries")?;
    let total: f64 = times.iter().map(|(_, t)| t).sum();
    println!("{} — b={b} m={m} d={d} n={n} p={p} h={h}", ctx.info.name);
    for (label, t) in &times {
        println!("{label:>24}  {:9.3} ms  {:5.1}%", t * 1e3, 100.0 * t / total);
    }
    println!("{:>24}  {:9.3} ms", "total", total * 1e3);
    Ok(())
}
