//! Parameters, forward FLOPs per image (counted in src/flops.rs) and weight bytes of model folders.
//!
//! cargo run --release --example model_stats -- weights/soft-moe-vit weights/dense-vit

use softmoe::flops::vit_flops_per_image;
use softmoe::SafeTensors;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for dir in std::env::args().skip(1) {
        let w = softmoe::weights::VitWeights::load(&dir)?;
        let st = SafeTensors::read(format!("{dir}/model.safetensors"))?;
        let params: usize = st.entries().iter().map(|e| e.shape.iter().product::<usize>()).sum();
        println!(
            "{dir}: {params} parameters ({:.2} MB f32), {} forward FLOPs per image",
            params as f64 * 4.0 / 1e6,
            vit_flops_per_image(&w.config)
        );
    }
    Ok(())
}
