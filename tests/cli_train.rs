//! `softmoe train`: a short run writes a checkpoint that `classify` loads, the same seed gives the
//! same loss trace bit for bit, `--resume` goes on from the checkpoint, bad arguments are refused
//! with one line. Reads Fashion-MNIST from target/fashion-mnist (`cargo xtask data`).

use std::path::{Path, PathBuf};
use std::process::Command;

use softmoe::data::CLASS_NAMES;
use softmoe::model::VitConfig;
use softmoe::Gelu;

const BIN: &str = env!("CARGO_BIN_EXE_softmoe");

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-train-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn data_dir() -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fashion-mnist");
    assert!(dir.exists(), "{} is missing: `cargo xtask data` fetches Fashion-MNIST", dir.display());
    dir.to_string_lossy().into_owned()
}

/// A small Soft MoE ViT's config.json: 7×7 patches (16 tokens), d = 16, a dense and a Soft MoE block.
fn config(dir: &Path, moe_type: Option<&str>) -> String {
    let c = VitConfig {
        image_size: 28,
        channels: 1,
        patch_size: 7,
        hidden_size: 16,
        num_layers: 2,
        num_heads: 2,
        mlp_dim: 32,
        num_classes: 10,
        moe_layers: vec![1],
        num_experts: 4,
        slots_per_expert: 2,
        expert_mlp_dim: 24,
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
    let mut text = c.to_json();
    if let Some(t) = moe_type {
        text = text.replacen('{', &format!("{{\"moe_type\": \"{t}\", \"router_k\": 1, \"group_size\": 4,"), 1);
    }
    let path = dir.join("config.json");
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
}

fn losses(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("losses.txt")).unwrap().lines().map(String::from).collect()
}

const QUICK: [&str; 6] = ["--batch-size", "32", "--steps-per-epoch", "4", "--eval-sample", "100"];

#[test]
fn a_short_run_checkpoints_a_model_that_classify_loads_and_repeats_bit_for_bit() {
    let dir = scratch("short");
    let cfg = config(&dir, None);
    let data = data_dir();
    let outs: Vec<PathBuf> = (0..2).map(|i| dir.join(format!("run{i}"))).collect();
    for out in &outs {
        let mut args = vec!["train", "--config", &cfg, "--data", &data, "--epochs", "1", "--seed", "3", "--out", out.to_str().unwrap()];
        args.extend(QUICK);
        let (code, stdout, stderr) = run(&args);
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.contains("steps: 4") && stdout.contains("test accuracy: "), "{stdout}");
        assert!(stderr.contains("epoch 1/1: loss ") && stderr.contains("images/s"), "{stderr}");
    }
    let (a, b) = (losses(&outs[0]), losses(&outs[1]));
    assert_eq!(a.len(), 4);
    assert_eq!(a, b, "two runs with one seed: the loss traces differ");
    assert_eq!(std::fs::read(outs[0].join("model.safetensors")).unwrap(), std::fs::read(outs[1].join("model.safetensors")).unwrap());
    // What every other command loads.
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("weights/samples.safetensors");
    let (code, stdout, stderr) = run(&["classify", "--model", outs[0].to_str().unwrap(), "--images", samples.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 64);
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(outs[0].join("config.json")).unwrap()).unwrap();
    assert_eq!(config["training"]["steps"], 4);
    assert_eq!(config["training"]["seed"], 3);
    assert_eq!(config["training"]["label_smoothing"], 0.1);
    let leftovers: Vec<_> =
        std::fs::read_dir(&outs[0]).unwrap().map(|e| e.unwrap().file_name()).filter(|n| n.to_string_lossy().starts_with('.')).collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn resume_goes_on_from_the_checkpoint() {
    let dir = scratch("resume");
    let cfg = config(&dir, None);
    let data = data_dir();
    let out = dir.join("run");
    let out_s = out.to_str().unwrap();
    let mut args = vec!["train", "--config", &cfg, "--data", &data, "--epochs", "1", "--out", out_s];
    args.extend(QUICK);
    assert_eq!(run(&args).0, 0);
    let first = losses(&out);
    let mut args = vec!["train", "--resume", out_s, "--data", &data, "--epochs", "2", "--out", out_s];
    args.extend(QUICK);
    let (code, stdout, stderr) = run(&args);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("epochs: 2") && stdout.contains("steps: 8"), "{stdout}");
    assert!(stderr.contains("epoch 2/2") && !stderr.contains("epoch 1/2"), "{stderr}");
    let all = losses(&out);
    assert_eq!(all.len(), 8);
    assert_eq!(all[..4], first[..], "the resumed trace starts with the checkpoint's");
    let mut args = vec!["train", "--resume", out_s, "--data", &data, "--epochs", "2", "--out", out_s];
    args.extend(QUICK);
    let (code, _, stderr) = run(&args);
    assert_eq!(code, 2);
    assert!(stderr.contains("done 2 epochs already"), "{stderr}");
}

#[test]
fn bad_arguments_are_refused_with_one_line() {
    let dir = scratch("bad");
    let cfg = config(&dir, None);
    let sparse_dir = dir.join("sparse");
    std::fs::create_dir_all(&sparse_dir).unwrap();
    let sparse = config(&sparse_dir, Some("tokens_choice"));
    let data = data_dir();
    let missing = dir.join("no-data");
    for (args, want) in [
        (vec!["train"], "--config FILE (a model's config.json) or --resume DIR is required"),
        (vec!["train", "--config", &cfg, "--resume", "x"], "not both"),
        (vec!["train", "--config", &cfg, "--batch-size", "0"], "--batch-size needs a positive batch size"),
        (vec!["train", "--config", &cfg, "--lr", "nan"], "--lr needs a positive learning rate"),
        (vec!["train", "--config", &cfg, "--augment", "rotate"], "--augment needs `flip` or `none`"),
        (vec!["train", "--config", &cfg, "--label-smoothing", "1"], "--label-smoothing needs a value in [0, 1)"),
        (vec!["train", "--config", &sparse, "--data", &data], "`moe_type` is `tokens_choice`"),
        (vec!["train", "--config", &cfg, "--data", missing.to_str().unwrap()], "cargo xtask data"),
        (vec!["train", "--resume", cfg.as_str()], "config.json"),
    ] {
        let (code, stdout, stderr) = run(&args);
        assert_eq!(code, 2, "{args:?}: {stdout} {stderr}");
        let last = stderr.lines().last().unwrap_or_default();
        assert!(last.starts_with("softmoe: ") && last.contains(want), "{args:?}: {stderr}");
    }
}
