//! `softmoe classify` and `softmoe eval`: output format, agreement of the two backends, bad input.

use std::path::{Path, PathBuf};
use std::process::Command;

use softmoe::data::CLASS_NAMES;
use softmoe::model::VitConfig;
use softmoe::random::{random_vit, Rng};
use softmoe::routing::Router;
use softmoe::weights::safetensors::serialize;
use softmoe::{Gelu, Tensor};

const BIN: &str = env!("CARGO_BIN_EXE_softmoe");

/// GPU against the f64 path for the random two-block model's probabilities (see its use).
const PROB_TOL: f64 = 3e-7;

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-model-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A random model of the demo's shape, written as config.json + model.safetensors.
fn model(dir: &Path) -> PathBuf {
    model_routed(dir, None)
}

/// As `model`, its MoE block Soft MoE (`router` None) or sparse in groups of 4 images.
fn model_routed(dir: &Path, router: Option<Router>) -> PathBuf {
    let config = VitConfig {
        image_size: 28,
        channels: 1,
        patch_size: 4,
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
        router,
        group_size: if router.is_some() { 4 } else { 0 },
        attention_qk_norm: false,
        classifier: softmoe::Pooling::Gap,
        dispatch_bfloat16: false,
        moe_variant: softmoe::SoftMoeVariant::Vmoe,
    };
    let w = random_vit(&mut Rng::new(7), &config);
    let m = dir.join(router.map_or("model", |r| r.name()));
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(m.join("config.json"), config.to_json()).unwrap();
    std::fs::write(m.join("model.safetensors"), w.to_safetensors()).unwrap();
    m
}

fn images(dir: &Path, data: Vec<f32>, shape: Vec<usize>) -> PathBuf {
    let path = dir.join("images.safetensors");
    std::fs::write(&path, serialize(&[("images", &Tensor { shape, data })], &Default::default())).unwrap();
    path
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).to_string(), String::from_utf8_lossy(&out.stderr).to_string())
}

fn parse_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}"))).collect()
}

#[test]
fn json_lines_agree_between_gpu_and_cpu_and_round_trip_f32() {
    let dir = scratch("json");
    let m = model(&dir);
    let data: Vec<f32> = Rng::new(8).vec(5 * 784, 0.5).into_iter().map(|v| v + 0.5).collect();
    let img = images(&dir, data, vec![5, 28, 28]);
    let (m, img) = (m.to_str().unwrap(), img.to_str().unwrap());
    let (code, gpu, err) = run(&["classify", "--model", m, "--images", img, "--json", "--batch", "2"]);
    assert_eq!(code, 0, "{err}");
    let (code, cpu, err) = run(&["classify", "--model", m, "--images", img, "--json", "--cpu"]);
    assert_eq!(code, 0, "{err}");
    let (gpu, cpu) = (parse_lines(&gpu), parse_lines(&cpu));
    assert_eq!(gpu.len(), 5);
    for (i, (g, c)) in gpu.iter().zip(&cpu).enumerate() {
        assert_eq!(g["index"], i);
        let label = g["label"].as_u64().unwrap() as usize;
        assert_eq!(g["class"], CLASS_NAMES[label]);
        assert_eq!(g["label"], c["label"], "image {i}: GPU and CPU disagree");
        let probs: Vec<f64> = g["probs"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let logits: Vec<f64> = g["logits"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert_eq!(probs.len(), 10);
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-5);
        assert!(logits.iter().all(|&l| l <= logits[label]), "label is not the argmax");
        // Each printed float is the shortest text of an f32, so it reads back to that same f32.
        assert!(probs.iter().chain(&logits).all(|&v| format!("{:?}", v as f32).parse::<f64>().unwrap() == v));
        let cp: Vec<f64> = c["probs"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        // Probabilities (≤ 1; the softmax damps logit errors by p(1 − p) ≤ 1/4) carry the f32
        // round-off of two blocks: a few ε·(√32 + 8)/4 ≈ 4e-7 at most, 3e-8 measured; 3e-7 keeps
        // 10× headroom.
        let d = softmoe::compare::max_abs_diff(&probs, &cp).unwrap();
        eprintln!("image {i}: GPU against CPU probabilities {:.2e}", d.max);
        d.within(&format!("image {i}: GPU against CPU probabilities"), PROB_TOL).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn png_files_classify_as_the_pixels_they_decode_to() {
    // Decoding itself (grayscale, resizing) is tested in src/images.rs; here the CLI must give a PNG
    // exactly the answer of the same pixels given as a tensor, and different pictures different ones.
    let dir = scratch("png");
    let m = model(&dir);
    let shirt = dir.join("shirt.png");
    image::RgbImage::from_fn(56, 70, |x, y| {
        if (10..46).contains(&x) && (8..60).contains(&y) {
            image::Rgb([200, 180, 160])
        } else {
            image::Rgb([0, 0, 0])
        }
    })
    .save(&shirt)
    .unwrap();
    let stripes = dir.join("stripes.png");
    image::GrayImage::from_fn(28, 28, |x, _| image::Luma([if x % 4 < 2 { 255 } else { 0 }])).save(&stripes).unwrap();
    let pixels: Vec<f32> = [&shirt, &stripes].iter().flat_map(|p| softmoe::images::png_to_gray(p, 28).unwrap()).collect();
    let tensor = images(&dir, pixels, vec![2, 28, 28]);
    let m = m.to_str().unwrap();
    let (code, from_png, err) = run(&["classify", "--model", m, "--images", shirt.to_str().unwrap(), stripes.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let (code, from_tensor, err) = run(&["classify", "--model", m, "--images", tensor.to_str().unwrap(), "--json"]);
    assert_eq!(code, 0, "{err}");
    let (png, tensor) = (parse_lines(&from_png), parse_lines(&from_tensor));
    assert_eq!(png.len(), 2);
    for (i, (a, b)) in png.iter().zip(&tensor).enumerate() {
        assert_eq!(a["logits"], b["logits"], "image {i}: the PNG and its decoded pixels classify differently");
    }
    assert_ne!(png[0]["logits"], png[1]["logits"], "two different pictures gave the same logits");
}

#[test]
fn bad_images_are_refused_with_one_line() {
    let dir = scratch("bad");
    let m = model(&dir);
    let m = m.to_str().unwrap();
    let not_png = dir.join("fake.png");
    std::fs::write(&not_png, b"this is not a png").unwrap();
    let mut nan = vec![0.5f32; 2 * 784];
    nan[900] = f32::NAN;
    let cases = [
        (images(&scratch("bad-shape"), vec![0.5; 2 * 27 * 27], vec![2, 27, 27]), "`images` has shape [2, 27, 27]"),
        (images(&scratch("bad-nan"), nan, vec![2, 28, 28]), "pixel 900 is NaN"),
        (not_png, "not a readable PNG"),
    ];
    for (path, needle) in cases {
        let (code, out, err) = run(&["classify", "--model", m, "--images", path.to_str().unwrap()]);
        assert_eq!(code, 2, "{needle}: {err}");
        assert!(out.is_empty(), "{needle}: printed results: {out}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(needle), "expected `{needle}` in: {err}");
    }
    let (code, _, err) = run(&["classify", "--model", m, "--images", "x.safetensors", "--batch", "0"]);
    assert_eq!(code, 2);
    assert!(err.contains("--batch must be a positive integer"), "{err}");
}

/// The `outputs changed: X/Y` count of `softmoe batch-effects`.
fn changed(stdout: &str) -> (usize, usize) {
    let line = stdout.lines().find_map(|l| l.strip_prefix("outputs changed: ")).unwrap_or_else(|| panic!("no count in {stdout}"));
    let frac = line.split_whitespace().next().unwrap();
    let (a, b) = frac.split_once('/').unwrap();
    (a.parse().unwrap(), b.parse().unwrap())
}

#[test]
fn batch_effects_are_zero_for_soft_moe_and_measured_for_sparse_routers() {
    let dir = scratch("batch-effects");
    let data: Vec<f32> = Rng::new(9).vec(12 * 784, 0.5).into_iter().map(|v| v + 0.5).collect();
    let img = images(&dir, data, vec![12, 28, 28]);
    let img = img.to_str().unwrap();
    for router in [None, Some(Router::tokens_choice(1, 1.0)), Some(Router::experts_choice(1.0))] {
        let m = model_routed(&dir, router);
        let args = ["batch-effects", "--model", m.to_str().unwrap(), "--images", img, "--batch", "8", "--arrangements", "2"];
        let (code, out, err) = run(&args);
        assert_eq!(code, 0, "{err}");
        let (n, cases) = changed(&out);
        assert_eq!(cases, 24, "{out}");
        match router {
            None => assert_eq!(n, 0, "Soft MoE output changed with the batch: {out}"),
            // Alone an image has a quarter of its group's capacity: its routing, hence output, moves.
            Some(r) => assert!(n > 0, "{r:?}: no output changed with the batch: {out}"),
        }
        // The f64 reference shows the same effect (routing is a property of the model, not the GPU).
        let (code, out, err) = run(&[&args[..], &["--cpu"]].concat());
        assert_eq!(code, 0, "{err}");
        assert_eq!(changed(&out).0 == 0, router.is_none(), "--cpu: {out}");
    }
    let (code, _, err) = run(&["batch-effects", "--model", dir.join("model").to_str().unwrap(), "--images", img, "--batch", "0"]);
    assert_eq!(code, 2);
    assert!(err.contains("--batch must be a positive integer"), "{err}");
}

#[test]
fn info_reports_the_adapter_its_limits_and_features_as_the_library_sees_them() {
    let (code, out, err) = run(&["info"]);
    assert_eq!(code, 0, "{err}");
    let ctx = pollster::block_on(softmoe::GpuContext::new()).unwrap();
    let value = |key: &str| {
        out.lines()
            .find_map(|l| l.trim_start().strip_prefix(key))
            .unwrap_or_else(|| panic!("no `{key}` line in:\n{out}"))
            .trim()
            .to_string()
    };
    assert_eq!(value("adapter:"), ctx.info.name);
    assert_eq!(value("backend:"), format!("{:?}", ctx.info.backend));
    assert_eq!(value("device type:"), format!("{:?}", ctx.info.device_type));
    assert_eq!(value("max_storage_buffer_binding_size:"), ctx.limits.max_storage_buffer_binding_size.to_string());
    assert_eq!(value("max_compute_workgroups_per_dimension:"), ctx.limits.max_compute_workgroups_per_dimension.to_string());
    assert_eq!(value("features in use:"), format!("{:?}", ctx.features));
    let (code, _, err) = run(&["info", "--bogus"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--bogus"), "{err}");
}

/// Probabilities of one `--json` line.
fn probs(line: &serde_json::Value) -> Vec<f64> {
    line["probs"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect()
}

#[test]
fn classify_with_f16_expert_weights_runs_on_the_gpu_and_is_refused_with_cpu() {
    let dir = scratch("f16");
    // The demo model's shape with d and h multiples of 4, as f16 storage needs.
    let m = model(&dir);
    let data: Vec<f32> = Rng::new(12).vec(6 * 784, 0.5).into_iter().map(|v| v + 0.5).collect();
    let img = images(&dir, data, vec![6, 28, 28]);
    let (m, img) = (m.to_str().unwrap(), img.to_str().unwrap());
    let (code, f32_out, err) = run(&["classify", "--model", m, "--images", img, "--json"]);
    assert_eq!(code, 0, "{err}");
    let (code, f16_out, err) = run(&["classify", "--model", m, "--images", img, "--json", "--f16"]);
    assert_eq!(code, 0, "{err}");
    let (a, b) = (parse_lines(&f32_out), parse_lines(&f16_out));
    assert_eq!(b.len(), 6);
    let mut moved = 0.0f64;
    for (x, y) in a.iter().zip(&b) {
        let d = softmoe::compare::max_abs_diff(&probs(x), &probs(y)).unwrap();
        // f16 rounds each expert kernel value by up to 2⁻¹¹ relatively (tests/gpu/f16_weights.rs);
        // probabilities, in [0, 1], move by at most a few of those.
        d.within("f16 against f32 probabilities", 4.0 / 2048.0).unwrap();
        moved = moved.max(d.max);
    }
    assert!(moved > 0.0, "--f16 changed no probability: the flag had no effect");
    let (code, _, err) = run(&["classify", "--model", m, "--images", img, "--f16", "--cpu"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--f16 applies to the GPU path"), "{err}");
}

#[test]
fn eval_needs_a_data_folder_and_names_a_bad_one() {
    let dir = scratch("eval-data");
    let m = model(&dir);
    let m = m.to_str().unwrap();
    let (code, out, err) = run(&["eval", "--model", m]);
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert!(err.contains("--data DIR is required") && err.contains("cargo xtask data"), "{err}");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let (code, _, err) = run(&["eval", "--model", m, "--data", empty.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("empty") && err.contains("no Fashion-MNIST class files"), "{err}");
}

#[test]
fn a_vmoe_named_model_classifies_as_its_vit_named_twin_and_an_unused_tensor_needs_allow_unused() {
    let dir = scratch("vmoe-names");
    let vit = model(&dir);
    let vmoe = dir.join("vmoe");
    std::fs::create_dir_all(&vmoe).unwrap();
    std::fs::copy(vit.join("config.json"), vmoe.join("config.json")).unwrap();
    let w = softmoe::VitWeights::load(&vit).unwrap();
    let renamed = softmoe::VitWeights { names: softmoe::BlockNames::Vmoe, ..w };
    let st = softmoe::SafeTensors::parse(renamed.to_safetensors(), "mem").unwrap();
    assert!(st.entry("Encoder/encoderblock_0/SelfAttention/out/kernel").is_some());
    let mut tensors: Vec<(String, Tensor)> = st.entries().iter().map(|e| (e.name.clone(), st.tensor_f32(&e.name).unwrap())).collect();
    std::fs::write(vmoe.join("model.safetensors"), renamed.to_safetensors()).unwrap();
    let data: Vec<f32> = Rng::new(9).vec(3 * 784, 0.5).into_iter().map(|v| v + 0.5).collect();
    let img = images(&dir, data, vec![3, 28, 28]);
    let img = img.to_str().unwrap();
    let (code, want, err) = run(&["classify", "--model", vit.to_str().unwrap(), "--images", img, "--json"]);
    assert_eq!(code, 0, "{err}");
    let (code, got, err) = run(&["classify", "--model", vmoe.to_str().unwrap(), "--images", img, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(parse_lines(&got), parse_lines(&want), "the same weights under vmoe's names");

    // A class token the config (classifier gap) does not use: refused, then loaded when allowed.
    tensors.push(("cls".into(), Tensor::zeros(vec![1, 1, 16])));
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    std::fs::write(vmoe.join("model.safetensors"), serialize(&refs, &Default::default())).unwrap();
    let (code, _, err) = run(&["classify", "--model", vmoe.to_str().unwrap(), "--images", img, "--json"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("tensor `cls` is not used by the config") && err.contains("`classifier`") && err.contains("--allow-unused"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let (code, got, err) = run(&["classify", "--model", vmoe.to_str().unwrap(), "--images", img, "--json", "--allow-unused"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(parse_lines(&got), parse_lines(&want));
}
