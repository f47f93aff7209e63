//! Any bytes as a safetensors file, a layer, a ViT and a config.json: errors, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use softmoe::model::VitConfig;
use softmoe::weights::VitWeights;
use softmoe::{SafeTensors, SoftMoeWeights};

const CONFIG: &str = r#"{"image_size": 8, "channels": 1, "patch_size": 4, "hidden_size": 4, "num_layers": 2,
  "num_heads": 2, "mlp_dim": 8, "num_classes": 3, "moe_layers": [1], "num_experts": 2, "slots_per_expert": 1,
  "expert_mlp_dim": 4}"#;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = VitConfig::from_json(text, "fuzz");
    }
    if let Ok(st) = SafeTensors::parse(data.to_vec(), "fuzz") {
        let _ = SoftMoeWeights::from_safetensors(&st, "");
        let _ = SoftMoeWeights::from_layer_file(&st, Default::default());
        let config = VitConfig::from_json(CONFIG, "config").expect("the fixed config is valid");
        let _ = VitWeights::from_parts(config, &st);
        for e in st.entries() {
            let _ = st.tensor_f32(&e.name);
        }
    }
});
