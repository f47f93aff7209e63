//! torchvision's `VisionTransformer` with the MLPs of two blocks replaced by soft-moe-pytorch
//! `SoftMoE`s, built and run by PyTorch (tests/fixtures/torchvision_vit, written by
//! tools/torchvision_vit_fixture.py): its state_dict converted by `weights::convert::torchvision_vit`,
//! what `softmoe convert --from torchvision-vit` runs, classifies within 1e-5 of PyTorch's logits on
//! the GPU and on the f64 path.

use std::path::PathBuf;

use softmoe::model::Vit;
use softmoe::reference::vit_forward;
use softmoe::weights::convert::torchvision_vit;
use softmoe::{Pooling, SafeTensors, SoftMoeVariant};

use crate::common::{assert_close, ctx, max_abs_diff};

const BOUND: f64 = 1e-5;

#[test]
fn a_converted_torchvision_vit_with_soft_moe_blocks_classifies_as_pytorch_does() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torchvision_vit");
    assert!(dir.join("model.safetensors").exists(), "{}: missing (tools/torchvision_vit_fixture.py)", dir.display());
    let torch: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("torch_config.json")).unwrap()).unwrap();
    let vt = &torch["VisionTransformer"];
    let heads = vt["num_heads"].as_u64().unwrap() as usize;
    let w = torchvision_vit(&SafeTensors::read(dir.join("model.safetensors")).unwrap(), heads).unwrap();
    let c = &w.config;
    for (key, v) in [
        ("image_size", c.image_size),
        ("patch_size", c.patch_size),
        ("num_layers", c.num_layers),
        ("hidden_dim", c.hidden_size),
        ("mlp_dim", c.mlp_dim),
        ("num_classes", c.num_classes),
    ] {
        assert_eq!(vt[key].as_u64(), Some(v as u64), "{key}");
    }
    let moe: Vec<usize> = torch["moe_blocks"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    assert_eq!((&c.moe_layers, c.num_experts, c.slots_per_expert), (&moe, 4, 2));
    assert_eq!((c.classifier, c.moe_variant, c.channels), (Pooling::Token, SoftMoeVariant::SoftMoePytorch, 3));

    let io = SafeTensors::read(dir.join("io.safetensors")).unwrap();
    let (images, want) = (io.tensor_f32("images").unwrap(), io.tensor_f32("logits").unwrap());
    let gpu = pollster::block_on(pollster::block_on(Vit::new(ctx(), &w)).unwrap().classify_with_maps(&images)).unwrap();
    assert_close("torchvision ViT: GPU logits against PyTorch's", &gpu.logits.data, &want.data, BOUND);
    let cpu = vit_forward(&w, &images).unwrap();
    assert_close("torchvision ViT: f64 logits against PyTorch's", &cpu.logits, &want.data, BOUND);
    assert_eq!(gpu.maps.len(), 2);
    // The bound sees the Soft MoE blocks: with their tokens' RMSNorm scales γ set to 1 the logits
    // are far off.
    let mut plain = w.clone();
    for b in &mut plain.blocks {
        if let softmoe::weights::BlockMlp::SoftMoe(l) = &mut b.mlp {
            l.norm_scale.iter_mut().for_each(|g| *g = 1.0);
        }
    }
    let off = max_abs_diff("γ = 1", &vit_forward(&plain, &images).unwrap().logits, &want.data);
    eprintln!("torchvision ViT: with the token RMSNorm's γ set to 1 the logits are {off:.2e} off");
    assert!(off > 100.0 * BOUND, "{off:e}");
}
