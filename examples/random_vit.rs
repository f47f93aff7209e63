//! Writes a seeded random Soft MoE ViT (config.json + model.safetensors) in SPEC §2's format, to
//! try the loader, the CLI or the page before a model is trained.
//!
//! cargo run --release --example random_vit -- OUT_DIR [seed]

use softmoe::data::CLASS_NAMES;
use softmoe::model::VitConfig;
use softmoe::random::{random_vit, Rng};
use softmoe::Gelu;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = std::path::PathBuf::from(args.next().ok_or("usage: random_vit OUT_DIR [seed]")?);
    let seed: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(0);
    let config = VitConfig {
        image_size: 28,
        channels: 1,
        patch_size: 4,
        hidden_size: 64,
        num_layers: 4,
        num_heads: 4,
        mlp_dim: 128,
        num_classes: 10,
        moe_layers: vec![2, 3],
        num_experts: 8,
        slots_per_expert: 2,
        expert_mlp_dim: 128,
        gelu: Gelu::Tanh,
        normalize: true,
        layer_norm_eps: 1e-6,
        class_names: CLASS_NAMES.iter().map(|s| s.to_string()).collect(),
        router: None,
        group_size: 0,
        attention_qk_norm: false,
        classifier: softmoe::Pooling::Gap,
        dispatch_bfloat16: false,
        moe_variant: softmoe::SoftMoeVariant::Vmoe,
    };
    let weights = random_vit(&mut Rng::new(seed), &config);
    std::fs::create_dir_all(&out)?;
    std::fs::write(out.join("config.json"), config.to_json())?;
    std::fs::write(out.join("model.safetensors"), weights.to_safetensors())?;
    println!("wrote {}", out.display());
    Ok(())
}
