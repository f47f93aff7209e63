//! Times the phases of `softmoe layer` on one layer file: load, upload, first and repeated forward.
//!
//! cargo run --release --example time_layer -- DIR   (DIR from the random_layer example)

use std::time::Instant;

use softmoe::{GpuContext, SafeTensors, SoftMoe, SoftMoeWeights};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).ok_or("usage: time_layer DIR")?);
    let t = Instant::now();
    let w = SoftMoeWeights::from_layer_file(&SafeTensors::read(dir.join("layer.safetensors"))?, Default::default())?;
    let x = SafeTensors::read(dir.join("input.safetensors"))?.tensor_f32("x")?;
    println!("read files: {:.2?}", t.elapsed());
    let t = Instant::now();
    let ctx = pollster::block_on(GpuContext::new())?;
    println!("device ({}): {:.2?}", ctx.info.name, t.elapsed());
    let t = Instant::now();
    let layer = pollster::block_on(SoftMoe::new(ctx, &w))?;
    println!("upload weights: {:.2?}", t.elapsed());
    for i in 0..3 {
        let t = Instant::now();
        pollster::block_on(layer.forward_with_maps(&x))?;
        println!("forward {i} (batch {}): {:.2?}", x.shape[0], t.elapsed());
    }
    let t = Instant::now();
    softmoe::reference::soft_moe_forward(&w, &x)?;
    println!("f64 reference forward: {:.2?}", t.elapsed());
    Ok(())
}
