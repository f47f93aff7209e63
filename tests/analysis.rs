//! `softmoe analyze`: the statistics agree between the GPU and the f64 path, keep their bounds, and
//! the report validates against docs/analysis.schema.json (which refuses wrong documents).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use softmoe::analysis::stats::image_stats;
use softmoe::analysis::Analyzer;
use softmoe::model::{Classifier, Vit};
use softmoe::random::{random_vit, Rng};
use softmoe::weights::{BlockMlp, VitWeights};
use softmoe::{GpuContext, Tensor, VitConfig};

const BIN: &str = env!("CARGO_BIN_EXE_softmoe");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("analysis-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// 16 patch tokens (a power of two: 1/m is exact in f32), 3 experts × 2 slots, MoE in blocks 1 and 2.
fn model(seed: u64) -> VitWeights {
    let mut config = VitConfig::from_json(
        r#"{"image_size": 16, "channels": 1, "patch_size": 4, "hidden_size": 16, "num_layers": 3,
            "num_heads": 2, "mlp_dim": 32, "num_classes": 3, "moe_layers": [1, 2], "num_experts": 3,
            "slots_per_expert": 2, "expert_mlp_dim": 16}"#,
        "config.json",
    )
    .unwrap();
    config.class_names = vec!["a".into(), "b".into(), "c".into()];
    random_vit(&mut Rng::new(seed), &config)
}

fn images(b: usize) -> (Tensor, Vec<usize>) {
    let mut rng = Rng::new(9);
    let x = Tensor::new(vec![b, 16, 16], (0..b * 256).map(|_| rng.uniform()).collect()).unwrap();
    (x, (0..b).map(|i| i % 3).collect())
}

fn report(classifier: &Classifier, weights: &VitWeights, x: &Tensor, labels: &[usize], backend: &str) -> Value {
    let mut a = Analyzer::new(weights).unwrap();
    // Two batches, so that the sums run over more than one call.
    let half = labels.len() / 2;
    for (lo, hi) in [(0, half), (half, labels.len())] {
        let part = Tensor::new(vec![hi - lo, 16, 16], x.data[lo * 256..hi * 256].to_vec()).unwrap();
        let o = pollster::block_on(classifier.classify(&part, true)).unwrap();
        a.add(&o.maps, &labels[lo..hi]).unwrap();
    }
    a.finish("test", backend).unwrap()
}

fn gpu(weights: &VitWeights) -> Classifier {
    let ctx = pollster::block_on(GpuContext::new()).unwrap();
    Classifier::Gpu(pollster::block_on(Vit::new(ctx, weights)).unwrap())
}

/// The largest difference between two reports' numbers (their structure must be the same).
fn max_diff(a: &Value, b: &Value, at: &str) -> f64 {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(x.keys().collect::<Vec<_>>(), y.keys().collect::<Vec<_>>(), "keys at {at}");
            x.iter()
                .filter(|(k, _)| *k != "backend")
                .map(
                    |(k, v)| {
                        if k == "counts" {
                            counts_moved(v, &y[k], &format!("{at}.{k}"))
                        } else {
                            max_diff(v, &y[k], &format!("{at}.{k}"))
                        }
                    },
                )
                .fold(0.0, f64::max)
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "length at {at}");
            x.iter().zip(y).enumerate().map(|(i, (u, v))| max_diff(u, v, &format!("{at}[{i}]"))).fold(0.0, f64::max)
        }
        (Value::Number(x), Value::Number(y)) => {
            let d = (x.as_f64().unwrap() - y.as_f64().unwrap()).abs();
            if d > 1e-4 {
                eprintln!("{at}: {x} against {y}");
            }
            d
        }
        _ => {
            assert_eq!(a, b, "at {at}");
            0.0
        }
    }
}

/// Histogram counts: the same total, and at most one value moved to a neighbouring bin (a value
/// within f32 round-off of a bin edge may fall on either side); returns 0 when so.
fn counts_moved(a: &Value, b: &Value, at: &str) -> f64 {
    let (x, y): (Vec<i64>, Vec<i64>) = (
        a.as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect(),
        b.as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect(),
    );
    assert_eq!((x.len(), x.iter().sum::<i64>()), (y.len(), y.iter().sum::<i64>()), "{at}");
    let moved: Vec<usize> = (0..x.len()).filter(|&i| x[i] != y[i]).collect();
    let neighbours = moved.len() == 2 && moved[1] == moved[0] + 1 && (x[moved[0]] - y[moved[0]]).abs() == 1;
    assert!(moved.is_empty() || neighbours, "{at}: {x:?} against {y:?}");
    0.0
}

#[test]
fn the_gpu_and_the_f64_path_give_the_same_statistics() {
    let w = model(3);
    let (x, labels) = images(12);
    let g = report(&gpu(&w), &w, &x, &labels, "gpu");
    let c = report(&Classifier::Cpu(w.clone()), &w, &x, &labels, "cpu-f64");
    let d = max_diff(&g, &c, "report");
    eprintln!("largest difference between the GPU's and the f64 path's report: {d:.2e}");
    assert!(d < 1e-4, "GPU and f64 reports differ by {d}");
    assert_eq!(g["images"], 12);
    assert_eq!(g["blocks"].as_array().unwrap().len(), 2);
}

#[test]
fn statistics_stay_within_their_bounds() {
    let w = model(4);
    let (x, _) = images(8);
    let o = pollster::block_on(gpu(&w).classify(&x, true)).unwrap();
    let (m, s) = (16usize, 6usize);
    for lm in &o.maps {
        for img in 0..8 {
            let st = image_stats(&lm.dispatch.data[img * m * s..(img + 1) * m * s], &lm.combine.data[img * m * s..(img + 1) * m * s], m, s);
            let eps = 1e-9;
            for (&h, &e) in st.dispatch_entropy.iter().zip(&st.effective_tokens) {
                assert!((-eps..=(m as f64).ln() + 1e-6).contains(&h), "dispatch entropy {h}");
                assert!((1.0 - 1e-6..=m as f64 + 1e-4).contains(&e), "effective tokens {e}");
            }
            for (&h, &e) in st.combine_entropy.iter().zip(&st.effective_slots) {
                assert!((-eps..=(s as f64).ln() + 1e-6).contains(&h), "combine entropy {h}");
                assert!((1.0 - 1e-6..=s as f64 + 1e-4).contains(&e), "effective slots {e}");
            }
            // Each token's combine row sums to 1, so the slots' combine mass sums to m.
            assert!((st.slot_combine_mass.iter().sum::<f64>() - m as f64).abs() < 1e-4);
        }
    }
    // The random model is not uniform: some slot mixes clearly fewer than all m tokens.
    let r = report(&gpu(&w), &w, &x, &[0, 1, 2, 0, 1, 2, 0, 1], "gpu");
    let min_eff =
        r["blocks"][0]["slots"].as_array().unwrap().iter().map(|s| s["effective_tokens"]["min"].as_f64().unwrap()).fold(f64::MAX, f64::min);
    assert!(min_eff < 15.0, "{min_eff}");
}

#[test]
fn scale_zero_gives_uniform_dispatch_and_exactly_m_effective_tokens() {
    let mut w = model(5);
    for b in &mut w.blocks {
        if let BlockMlp::SoftMoe(l) = &mut b.mlp {
            l.scale = 0.0;
        }
    }
    let (x, labels) = images(4);
    for classifier in [gpu(&w), Classifier::Cpu(w.clone())] {
        let r = report(&classifier, &w, &x, &labels, classifier.backend());
        for block in r["blocks"].as_array().unwrap() {
            for slot in block["slots"].as_array().unwrap() {
                let e = &slot["effective_tokens"];
                assert_eq!((e["min"].as_f64(), e["max"].as_f64()), (Some(16.0), Some(16.0)), "{}", classifier.backend());
                assert!((slot["dispatch_entropy"]["min"].as_f64().unwrap() - 16f64.ln()).abs() < 1e-6);
                assert!(slot["mean_dispatch"].as_array().unwrap().iter().all(|v| v.as_f64() == Some(0.0625)));
            }
            let es = &block["tokens"]["effective_slots"];
            assert!((es["min"].as_f64().unwrap() - 6.0).abs() < 1e-5 && (es["max"].as_f64().unwrap() - 6.0).abs() < 1e-5);
        }
    }
}

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(root().join("docs/analysis.schema.json")).unwrap()).unwrap();
    jsonschema::validator_for(&schema).unwrap()
}

fn errors(v: &jsonschema::Validator, doc: &Value) -> Vec<String> {
    v.iter_errors(doc).map(|e| format!("{} at {}", e, e.instance_path())).collect()
}

/// A change that makes a report wrong.
type Edit = fn(&mut Value);

#[test]
fn the_report_validates_against_its_schema_and_wrong_documents_do_not() {
    let w = model(6);
    let (x, labels) = images(6);
    let r = report(&Classifier::Cpu(w.clone()), &w, &x, &labels, "cpu-f64");
    let v = validator();
    assert_eq!(errors(&v, &r), Vec::<String>::new());
    let wrong: [(&str, Edit); 6] = [
        ("a missing key", |d| {
            d.as_object_mut().unwrap().remove("blocks");
        }),
        ("an unknown key", |d| d["extra"] = 1.into()),
        ("another schema", |d| d["schema"] = "softmoe-analysis/0".into()),
        ("a negative count", |d| d["blocks"][0]["slots"][0]["dispatch_entropy"]["counts"][0] = (-1).into()),
        ("a dispatch weight above 1", |d| d["blocks"][0]["slots"][1]["mean_dispatch"][0] = 1.5.into()),
        ("four quantiles", |d| {
            d["blocks"][1]["tokens"]["effective_slots"]["quantiles"].as_array_mut().unwrap().pop();
        }),
    ];
    for (what, edit) in wrong {
        let mut d = r.clone();
        edit(&mut d);
        assert!(!errors(&v, &d).is_empty(), "the schema accepted {what}");
    }
}

#[test]
fn the_command_writes_a_valid_report_and_its_figures() {
    let out = scratch("cli");
    let o = Command::new(BIN)
        .args(["analyze", "--model"])
        .arg(root().join("weights/soft-moe-vit"))
        .arg("--images")
        .arg(root().join("weights/samples.safetensors"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(out.join("analysis.json")).unwrap()).unwrap();
    assert_eq!(errors(&validator(), &doc), Vec::<String>::new());
    assert_eq!((doc["images"].as_u64(), doc["tokens"].as_u64()), (Some(64), Some(49)));
    for block in [2, 3] {
        for fig in ["slot_maps", "entropy", "class_slot", "similarity"] {
            let img = image::open(out.join(format!("{fig}_block{block}.png"))).unwrap().to_rgb8();
            // Drawn, not blank: far more than the title's pixels differ from white.
            let ink = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
            assert!(ink > img.pixels().len() / 10, "{fig}_block{block}.png: {ink} non-white pixels");
        }
    }
}

fn refused(args: &[&std::ffi::OsStr], needle: &str) {
    let o = Command::new(BIN).arg("analyze").args(args).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains(needle) && err.lines().count() == 1, "expected `{needle}` in one line, got: {err}");
}

#[test]
fn bad_input_is_one_line_and_status_2() {
    let soft = root().join("weights/soft-moe-vit");
    let dense = root().join("weights/dense-vit");
    refused(&[], "--model is required");
    refused(&["--model".as_ref(), dense.as_os_str()], "Soft MoE block");
    refused(&["--model".as_ref(), soft.as_os_str(), "--sample".as_ref(), "0".as_ref()], "--sample must be a positive integer");
    refused(&["--model".as_ref(), soft.as_os_str(), "--data".as_ref(), "x".as_ref(), "--images".as_ref(), "y".as_ref()], "not both");
    // A safetensors file without labels names the tensor.
    let dir = scratch("nolabels");
    let file = dir.join("x.safetensors");
    let x = Tensor::new(vec![2, 28, 28], vec![0.5; 2 * 784]).unwrap();
    std::fs::write(&file, softmoe::weights::safetensors::serialize(&[("images", &x)], &Default::default())).unwrap();
    refused(&["--model".as_ref(), soft.as_os_str(), "--images".as_ref(), file.as_os_str()], "missing tensor `labels`");
    let missing = dir.join("none");
    refused(&["--model".as_ref(), soft.as_os_str(), "--data".as_ref(), missing.as_os_str()], "cargo xtask data");
}
