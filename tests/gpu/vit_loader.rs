//! Loading a ViT from config.json + model.safetensors: a good round trip, and every bad tensor named.

use std::path::{Path, PathBuf};

use softmoe::random::random_vit;
use softmoe::weights::safetensors::serialize;
use softmoe::weights::VitWeights;
use softmoe::{Error, SafeTensors, Tensor};

use crate::common::{vit_config, Rng};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("vit-loader-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes a random model, letting `edit` change its tensors first.
fn write_model(name: &str, edit: impl FnOnce(&mut Vec<(String, Tensor)>)) -> (PathBuf, VitWeights) {
    let dir = scratch(name);
    let c = vit_config(12, 1, 4, 8, 2, 2, &[1], 2, 2);
    let w = random_vit(&mut Rng::new(400), &c);
    let st = SafeTensors::parse(w.to_safetensors(), "mem").unwrap();
    let mut tensors: Vec<(String, Tensor)> = st.entries().iter().map(|e| (e.name.clone(), st.tensor_f32(&e.name).unwrap())).collect();
    edit(&mut tensors);
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    std::fs::write(dir.join("model.safetensors"), serialize(&refs, &Default::default())).unwrap();
    std::fs::write(dir.join("config.json"), c.to_json()).unwrap();
    (dir, w)
}

fn load_err(dir: &Path) -> String {
    match VitWeights::load(dir) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_saved_model_loads_back_identically() {
    let (dir, w) = write_model("round-trip", |_| {});
    let back = VitWeights::load(&dir).unwrap();
    assert_eq!(back.config, w.config);
    assert_eq!(back.blocks[0].qkv_kernel, w.blocks[0].qkv_kernel);
    assert_eq!(back.head_kernel, w.head_kernel);
}

#[test]
fn a_missing_tensor_is_named() {
    let name = "Encoder/encoderblock_1/Moe/Router/mu";
    let (dir, _) = write_model("missing", |t| t.retain(|(n, _)| n != name));
    let err = load_err(&dir);
    assert!(err.contains(&format!("missing tensor `{name}`")), "{err}");
}

#[test]
fn a_wrong_shape_is_named() {
    let name = "Encoder/encoderblock_0/LayerNorm_2/scale";
    let (dir, _) = write_model("shape", |t| t.iter_mut().filter(|(n, _)| n == name).for_each(|(_, v)| *v = Tensor::zeros(vec![9])));
    let err = load_err(&dir);
    assert!(err.contains(name) && err.contains("[9]"), "{err}");
}

#[test]
fn a_wrong_dtype_is_named() {
    let (dir, _) = write_model("dtype", |_| {});
    let path = dir.join("model.safetensors");
    let mut bytes = std::fs::read(&path).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..8 + header_len].to_vec()).unwrap();
    let at = header.find("\"head/bias\"").unwrap();
    let dt = at + header[at..].find("\"F32\"").unwrap();
    bytes[8 + dt + 1..8 + dt + 4].copy_from_slice(b"U32");
    std::fs::write(&path, bytes).unwrap();
    let err = load_err(&dir);
    assert!(err.contains("`head/bias` has dtype U32"), "{err}");
}

#[test]
fn a_truncated_file_is_named() {
    let (dir, _) = write_model("truncated", |_| {});
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = load_err(&dir);
    assert!(err.contains("model.safetensors") && err.contains("truncated"), "{err}");
}

#[test]
fn a_non_finite_value_is_named() {
    let name = "Encoder/encoderblock_0/MlpBlock_3/Dense_1/kernel";
    let (dir, _) = write_model("nan", |t| t.iter_mut().filter(|(n, _)| n == name).for_each(|(_, v)| v.data[3] = f32::NAN));
    let err = load_err(&dir);
    assert!(err.contains(name) && err.contains("non-finite"), "{err}");
}

#[test]
fn a_bad_config_is_named() {
    let (dir, _) = write_model("config", |_| {});
    let text = std::fs::read_to_string(dir.join("config.json")).unwrap().replace("\"patch_size\": 4", "\"patch_size\": 5");
    std::fs::write(dir.join("config.json"), text).unwrap();
    let err = load_err(&dir);
    assert!(err.contains("config.json") && err.contains("not a multiple of patch_size"), "{err}");
    assert!(matches!(VitWeights::load(&dir), Err(Error::Config { key, .. }) if key == "image_size"));
}
