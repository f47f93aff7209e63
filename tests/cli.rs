//! The `softmoe` program: a good run agrees with the f64 path; each bad input is one line and exit 2.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use softmoe::random::{random_input, random_layer, LayerShape, Rng};
use softmoe::weights::safetensors::serialize;
use softmoe::{Gelu, SafeTensors, SoftMoeWeights, Tensor};

const BIN: &str = env!("CARGO_BIN_EXE_softmoe");

/// A fresh directory per test, under the target directory.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn layer() -> SoftMoeWeights {
    let shape = LayerShape { d: 6, n: 3, p: 2, h: 5, scale: 4.0, gelu: Gelu::Tanh, normalize: true };
    random_layer(&mut Rng::new(1), shape)
}

fn write_input(dir: &Path, x: &Tensor) -> PathBuf {
    let path = dir.join("x.safetensors");
    std::fs::write(&path, serialize(&[("x", x)], &BTreeMap::new())).unwrap();
    path
}

/// Writes the layer's tensors, letting `edit` drop or replace some first.
fn write_layer(dir: &Path, edit: impl FnOnce(&mut Vec<(String, Tensor)>)) -> PathBuf {
    let st = SafeTensors::parse(layer().to_safetensors(), "mem").unwrap();
    let mut tensors: Vec<(String, Tensor)> = st.entries().iter().map(|e| (e.name.clone(), st.tensor_f32(&e.name).unwrap())).collect();
    edit(&mut tensors);
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let path = dir.join("layer.safetensors");
    std::fs::write(&path, serialize(&refs, st.metadata())).unwrap();
    path
}

fn run(weights: &Path, input: &Path, output: &Path, cpu: bool) -> (i32, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["layer", "--weights"]).arg(weights).arg("--input").arg(input).arg("--output").arg(output);
    if cpu {
        cmd.arg("--cpu");
    }
    let out = cmd.output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).to_string())
}

/// Runs a bad case: exit 2, one line naming `needle`, no output file.
fn assert_refused(name: &str, weights: &Path, input: &Path, needle: &str) {
    let output = weights.parent().unwrap().join("y.safetensors");
    let (code, stderr) = run(weights, input, &output, false);
    assert_eq!(code, 2, "{name}: exit status {code}, stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{name}: stderr is not one line: {stderr}");
    assert!(stderr.contains(needle), "{name}: stderr does not mention `{needle}`: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "{name}: {stderr}");
    assert!(!output.exists(), "{name}: an output file was written");
}

#[test]
fn gpu_and_cpu_runs_agree_and_write_all_three_tensors() {
    let dir = scratch("ok");
    let weights = write_layer(&dir, |_| {});
    let input = write_input(&dir, &random_input(&mut Rng::new(2), 3, 11, 6));
    let (gpu, cpu) = (dir.join("gpu.safetensors"), dir.join("cpu.safetensors"));
    for (path, on_cpu) in [(&gpu, false), (&cpu, true)] {
        let (code, stderr) = run(&weights, &input, path, on_cpu);
        assert_eq!(code, 0, "{stderr}");
    }
    let (g, c) = (SafeTensors::read(&gpu).unwrap(), SafeTensors::read(&cpu).unwrap());
    for (name, shape) in [("y", vec![3, 11, 6]), ("dispatch", vec![3, 11, 3, 2]), ("combine", vec![3, 11, 3, 2])] {
        let (a, b) = (g.tensor_f32(name).unwrap(), c.tensor_f32(name).unwrap());
        assert_eq!(a.shape, shape, "{name}");
        let diff = softmoe::compare::max_abs_diff(&a.data, &b.data).unwrap_or_else(|e| panic!("{name}: {e}"));
        // f32 round-off through reductions of length ≤ 6 on values of size ≤ max |want| (the
        // suite's f32 bound, tests/gpu/common.rs), twice for headroom.
        let magnitude = softmoe::compare::max_abs(&b.data).unwrap();
        let tol = 2.0 * f32::EPSILON as f64 * (6f64.sqrt() + 8.0) * magnitude;
        eprintln!("{name}: GPU against CPU {:.2e} (tolerance {tol:.2e})", diff.max);
        diff.within(&format!("{name}: GPU against CPU"), tol).unwrap_or_else(|e| panic!("{e}"));
    }
}

#[test]
fn a_tensor_the_layer_does_not_use_is_refused_unless_allowed() {
    let dir = scratch("unused");
    let weights = write_layer(&dir, |t| t.push(("Router/bias".into(), Tensor::zeros(vec![6]))));
    let input = write_input(&dir, &random_input(&mut Rng::new(2), 1, 4, 6));
    assert_refused("unused tensor", &weights, &input, "tensor `Router/bias` is not used by the config");
    let out = Command::new(BIN)
        .args(["layer", "--cpu", "--allow-unused", "--weights"])
        .arg(&weights)
        .arg("--input")
        .arg(&input)
        .arg("--output")
        .arg(dir.join("y.safetensors"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(SafeTensors::read(dir.join("y.safetensors")).unwrap().tensor_f32("y").unwrap().shape, vec![1, 4, 6]);
}

#[test]
fn dispatch_bfloat16_from_the_flag_or_the_metadata_gives_the_same_output() {
    let dir = scratch("bf16");
    let input = write_input(&dir, &random_input(&mut Rng::new(3), 2, 9, 6));
    let layer_y = |weights: &Path, flags: &[&str], name: &str| -> Vec<f32> {
        let out = dir.join(name);
        let status = Command::new(BIN)
            .args(["layer", "--cpu", "--weights"])
            .arg(weights)
            .arg("--input")
            .arg(&input)
            .arg("--output")
            .arg(&out)
            .args(flags)
            .output()
            .unwrap();
        assert_eq!(status.status.code(), Some(0), "{}", String::from_utf8_lossy(&status.stderr));
        SafeTensors::read(&out).unwrap().tensor_f32("y").unwrap().data
    };
    let plain = write_layer(&dir, |_| {});
    let f32_y = layer_y(&plain, &[], "f32.safetensors");
    let flag_y = layer_y(&plain, &["--dispatch-bfloat16"], "flag.safetensors");
    let marked = dir.join("marked.safetensors");
    std::fs::write(&marked, SoftMoeWeights { dispatch_bfloat16: true, ..layer() }.to_safetensors()).unwrap();
    let meta_y = layer_y(&marked, &[], "meta.safetensors");
    assert_eq!(flag_y, meta_y);
    assert_ne!(flag_y, f32_y, "the rounding changed nothing");
}

#[test]
fn missing_file_is_named() {
    let dir = scratch("missing-file");
    let input = write_input(&dir, &random_input(&mut Rng::new(2), 1, 4, 6));
    assert_refused("missing file", &dir.join("nope.safetensors"), &input, "nope.safetensors");
}

#[test]
fn missing_tensor_is_named() {
    let dir = scratch("missing-tensor");
    let weights = write_layer(&dir, |t| t.retain(|(n, _)| n != "Mlp/Dense_1/bias"));
    let input = write_input(&dir, &random_input(&mut Rng::new(2), 1, 4, 6));
    assert_refused("missing tensor", &weights, &input, "missing tensor `Mlp/Dense_1/bias`");
}

#[test]
fn wrong_dtype_is_named() {
    let dir = scratch("dtype");
    let weights = write_layer(&dir, |_| {});
    // Rewrite Router/mu's dtype in place: F32 → I32 keeps the byte size.
    let mut bytes = std::fs::read(&weights).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8(bytes[8..8 + header_len].to_vec()).unwrap();
    let at = header.find("\"Router/mu\"").unwrap();
    let dt = at + header[at..].find("\"F32\"").unwrap();
    bytes[8 + dt + 1..8 + dt + 4].copy_from_slice(b"I32");
    std::fs::write(&weights, bytes).unwrap();
    let input = write_input(&dir, &random_input(&mut Rng::new(2), 1, 4, 6));
    assert_refused("wrong dtype", &weights, &input, "`Router/mu` has dtype I32");
}

#[test]
fn wrong_shape_is_named() {
    let dir = scratch("shape");
    let weights = write_layer(&dir, |t| {
        let b0 = t.iter_mut().find(|(n, _)| n == "Mlp/Dense_0/bias").unwrap();
        b0.1 = Tensor::zeros(vec![3, 4]);
    });
    let input = write_input(&dir, &random_input(&mut Rng::new(2), 1, 4, 6));
    assert_refused("wrong shape", &weights, &input, "`Mlp/Dense_0/bias` has shape [3, 4]");
}

#[test]
fn mismatched_d_is_named() {
    let dir = scratch("d");
    let weights = write_layer(&dir, |_| {});
    let input = write_input(&dir, &random_input(&mut Rng::new(2), 1, 4, 7));
    assert_refused("mismatched d", &weights, &input, "`x` has shape [1, 4, 7]");
}

#[test]
fn zero_slots_are_refused() {
    let dir = scratch("zero-slots");
    let weights = write_layer(&dir, |t| {
        for (name, tensor) in t.iter_mut() {
            *tensor = match name.as_str() {
                "Router/mu" => Tensor::zeros(vec![6, 0, 2]),
                "Mlp/Dense_0/kernel" => Tensor::zeros(vec![0, 6, 5]),
                "Mlp/Dense_0/bias" => Tensor::zeros(vec![0, 5]),
                "Mlp/Dense_1/kernel" => Tensor::zeros(vec![0, 5, 6]),
                "Mlp/Dense_1/bias" => Tensor::zeros(vec![0, 6]),
                _ => continue,
            };
        }
    });
    let input = write_input(&dir, &random_input(&mut Rng::new(2), 1, 4, 6));
    assert_refused("n·p = 0", &weights, &input, "`n` is 0, expected a positive number of experts");
}

#[test]
fn truncated_file_is_named() {
    let dir = scratch("truncated");
    let weights = write_layer(&dir, |_| {});
    let bytes = std::fs::read(&weights).unwrap();
    std::fs::write(&weights, &bytes[..bytes.len() - 10]).unwrap();
    let input = write_input(&dir, &random_input(&mut Rng::new(2), 1, 4, 6));
    assert_refused("truncated", &weights, &input, "truncated");
}

#[test]
fn corrupt_header_is_named() {
    let dir = scratch("corrupt");
    let weights = dir.join("layer.safetensors");
    let mut bytes = 24u64.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{\"Router/mu\": [1, 2, 3 ");
    bytes.extend_from_slice(&[0u8; 64]);
    std::fs::write(&weights, bytes).unwrap();
    let input = write_input(&dir, &random_input(&mut Rng::new(2), 1, 4, 6));
    assert_refused("corrupt header", &weights, &input, "not a valid safetensors file");
}

#[test]
fn bad_usage_is_one_line_and_status_2() {
    for args in [vec![], vec!["frobnicate"], vec!["layer", "--weights"], vec!["layer", "--weights", "a", "--input", "b"]] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
    }
}

#[test]
fn the_vmoe_layer_fixture_runs_as_vmoe_wrote_it_in_both_dispatcher_modes() {
    // tests/fixtures/vmoe/layer (tools/vmoe_fixtures.py): vmoe's own tensors and outputs; the input
    // file holds `x` beside vmoe's outputs.
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vmoe/layer");
    let (weights, input) = (case.join("model.safetensors"), case.join("io.safetensors"));
    assert!(weights.exists(), "{}: missing (the fixtures of tools/vmoe_fixtures.py)", weights.display());
    let io = SafeTensors::read(&input).unwrap();
    let dir = scratch("vmoe-layer");
    for (flags, want, tol) in [(&[][..], "y_f32", 1e-5), (&["--dispatch-bfloat16"][..], "y_bf16", 1e-4)] {
        for cpu in [false, true] {
            let out = dir.join("y.safetensors");
            let mut cmd = Command::new(BIN);
            cmd.args(["layer", "--weights"]).arg(&weights).arg("--input").arg(&input).arg("--output").arg(&out).args(flags);
            if cpu {
                cmd.arg("--cpu");
            }
            let o = cmd.output().unwrap();
            assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
            let y = SafeTensors::read(&out).unwrap().tensor_f32("y").unwrap();
            let diff = softmoe::compare::max_abs_diff(&y.data, &io.tensor_f32(want).unwrap().data).unwrap();
            eprintln!("{want} (cpu {cpu}): {:.2e}", diff.max);
            diff.within(&format!("softmoe layer against vmoe's {want} (cpu {cpu})"), tol).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

fn soft_moe_pytorch_case() -> PathBuf {
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/vmoe/soft_moe_pytorch");
    assert!(case.join("model.safetensors").exists(), "{}: missing (the fixtures of tools/vmoe_fixtures.py)", case.display());
    case
}

/// An edit of a state_dict's tensors.
type Edit = dyn Fn(&mut Vec<(String, Tensor)>);

fn convert(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(BIN).arg("convert").args(args).output().unwrap()
}

#[test]
fn a_converted_soft_moe_pytorch_layer_runs_as_pytorch_computed_it() {
    // tests/fixtures/vmoe/soft_moe_pytorch: PyTorch's state_dict, input and output.
    let case = soft_moe_pytorch_case();
    let (state_dict, input) = (case.join("model.safetensors"), case.join("io.safetensors"));
    let dir = scratch("convert");
    let layer = dir.join("layer.safetensors");
    let o = convert(&["--from".as_ref(), "soft-moe-pytorch".as_ref(), state_dict.as_os_str(), layer.as_os_str()]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("d = 8, 4 experts × 2 slots, hidden 16, erf GELU (metadata variant = soft-moe-pytorch)"), "{stdout}");
    let st = SafeTensors::read(&layer).unwrap();
    assert_eq!(st.metadata().get("variant").map(String::as_str), Some("soft-moe-pytorch"));
    let mut names: Vec<&str> = st.entries().iter().map(|e| e.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        ["Mlp/Dense_0/bias", "Mlp/Dense_0/kernel", "Mlp/Dense_1/bias", "Mlp/Dense_1/kernel", "Norm/scale", "Router/mu", "SlotNorm/scale"]
    );
    // Only the layer file is left in the directory (the temporary file was renamed).
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    // The same state_dict converts to the same bytes.
    let again = dir.join("again.safetensors");
    assert_eq!(
        convert(&["--from".as_ref(), "soft-moe-pytorch".as_ref(), state_dict.as_os_str(), again.as_os_str()]).status.code(),
        Some(0)
    );
    assert_eq!(std::fs::read(&layer).unwrap(), std::fs::read(&again).unwrap());

    let want = SafeTensors::read(&input).unwrap().tensor_f32("y").unwrap();
    for cpu in [false, true] {
        let out = dir.join(if cpu { "cpu.safetensors" } else { "gpu.safetensors" });
        let (code, stderr) = run(&layer, &input, &out, cpu);
        assert_eq!(code, 0, "{stderr}");
        let y = SafeTensors::read(&out).unwrap().tensor_f32("y").unwrap();
        assert_eq!(y.shape, want.shape);
        let diff = softmoe::compare::max_abs_diff(&y.data, &want.data).unwrap();
        eprintln!("softmoe layer (cpu {cpu}) against PyTorch's y: {:.2e}", diff.max);
        diff.within(&format!("converted layer against PyTorch (cpu {cpu})"), 1e-5).unwrap_or_else(|e| panic!("{e}"));
    }
    // The state_dict itself is refused by `softmoe layer`, with the command that converts it.
    let (code, stderr) = run(&state_dict, &input, &dir.join("y.safetensors"), true);
    assert_eq!(code, 2);
    assert!(stderr.contains("softmoe convert --from soft-moe-pytorch"), "{stderr}");
}

#[test]
fn convert_refuses_bad_inputs_in_one_line_and_leaves_the_output_alone() {
    let case = soft_moe_pytorch_case();
    let st = SafeTensors::read(case.join("model.safetensors")).unwrap();
    let tensors: Vec<(String, Tensor)> = st.entries().iter().map(|e| (e.name.clone(), st.tensor_f32(&e.name).unwrap())).collect();
    let dir = scratch("convert-bad");
    // A state_dict edited by `edit`, written to `name`.
    let edited = |name: &str, edit: &Edit| -> PathBuf {
        let mut t = tensors.clone();
        edit(&mut t);
        let refs: Vec<(&str, &Tensor)> = t.iter().map(|(n, t)| (n.as_str(), t)).collect();
        let path = dir.join(name);
        std::fs::write(&path, serialize(&refs, &BTreeMap::new())).unwrap();
        path
    };
    let unknown = edited("unknown.safetensors", &|t| t.push(("norm.beta".into(), Tensor::zeros(vec![8]))));
    let missing = edited("missing.safetensors", &|t| t.retain(|(n, _)| n != "experts.experts.3.3.bias"));
    let shape = edited("shape.safetensors", &|t| {
        t.iter_mut().filter(|(n, _)| n == "slot_norm.gamma").for_each(|(_, v)| *v = Tensor::zeros(vec![9]))
    });
    let truncated = dir.join("truncated.safetensors");
    let bytes = std::fs::read(case.join("model.safetensors")).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() - 10]).unwrap();
    let converted = dir.join("converted.safetensors");
    std::fs::write(&converted, softmoe::weights::convert::soft_moe_pytorch_layer(&st).unwrap().to_safetensors()).unwrap();
    // An existing output that every failure must leave as it was.
    let out = dir.join("out.safetensors");
    std::fs::write(&out, b"old").unwrap();
    let os = |p: &Path| p.as_os_str().to_owned();
    let (o, from, smp) = (os(&out), std::ffi::OsString::from("--from"), std::ffi::OsString::from("soft-moe-pytorch"));
    let cases: Vec<(&str, Vec<std::ffi::OsString>, String)> = vec![
        ("unknown tensor", vec![from.clone(), smp.clone(), os(&unknown), o.clone()], "unknown tensor `norm.beta` [8]".into()),
        ("use_layernorm", vec![from.clone(), smp.clone(), os(&unknown), o.clone()], "`use_layernorm=True`".into()),
        ("missing tensor", vec![from.clone(), smp.clone(), os(&missing), o.clone()], "missing tensor `experts.experts.3.3.bias`".into()),
        (
            "wrong shape",
            vec![from.clone(), smp.clone(), os(&shape), o.clone()],
            "tensor `slot_norm.gamma` has shape [9], expected [8]".into(),
        ),
        ("truncated", vec![from.clone(), smp.clone(), os(&truncated), o.clone()], "truncated".into()),
        ("converted", vec![from.clone(), smp.clone(), os(&converted), o.clone()], "needs no conversion".into()),
        ("missing file", vec![from.clone(), smp.clone(), os(&dir.join("nope.safetensors")), o.clone()], "nope.safetensors".into()),
        ("unknown format", vec![from.clone(), "vmoe".into(), os(&unknown), o.clone()], "one of `soft-moe-pytorch`".into()),
        ("no format", vec![os(&unknown), o.clone()], "--from is required".into()),
        ("no output", vec![from.clone(), smp.clone(), os(&unknown)], "OUT.safetensors is required".into()),
        ("extra argument", vec![from.clone(), smp.clone(), os(&unknown), o.clone(), "x".into()], "unexpected argument `x`".into()),
        ("OUT is IN", vec![from.clone(), smp.clone(), o.clone(), o.clone()], "OUT is IN".into()),
    ];
    for (name, args, needle) in cases {
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let r = convert(&args);
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{name}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{name}: stderr is not one line: {stderr}");
        assert!(stderr.contains(&needle), "{name}: stderr does not mention `{needle}`: {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        assert_eq!(std::fs::read(&out).unwrap(), b"old", "{name}: the output was touched");
    }
    // Nothing but the inputs and the untouched output: no temporary file left behind.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 6);
}

#[test]
fn a_converted_torchvision_vit_is_a_model_folder_that_classifies_as_pytorch_did() {
    // tests/fixtures/torchvision_vit (tools/torchvision_vit_fixture.py): torchvision's ViT with two
    // soft-moe-pytorch blocks, its state_dict and PyTorch's logits.
    let case = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torchvision_vit");
    let state_dict = case.join("model.safetensors");
    assert!(state_dict.exists(), "{}: missing (tools/torchvision_vit_fixture.py)", state_dict.display());
    let dir = scratch("convert-vit");
    let model = dir.join("model");
    let args =
        ["--from".as_ref(), "torchvision-vit".as_ref(), "--num-heads".as_ref(), "2".as_ref(), state_dict.as_os_str(), model.as_os_str()];
    let o = convert(&args);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        stdout.contains(
            "28×28×3 images, patch 7, 3 blocks of width 16 with 2 heads, Soft MoE (soft-moe-pytorch) in blocks [1, 2], 10 classes"
        ),
        "{stdout}"
    );
    let mut files: Vec<String> =
        std::fs::read_dir(&model).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    files.sort();
    assert_eq!(files, ["config.json", "model.safetensors"]);
    let config = std::fs::read_to_string(model.join("config.json")).unwrap();
    assert!(config.contains(r#""moe_variant": "soft-moe-pytorch""#) && config.contains(r#""classifier": "token""#), "{config}");
    // The folder loads as any model does, and gives PyTorch's logits.
    let w = softmoe::VitWeights::load(&model).unwrap();
    let io = SafeTensors::read(case.join("io.safetensors")).unwrap();
    let vit = pollster::block_on(softmoe::Vit::new(pollster::block_on(softmoe::GpuContext::new()).unwrap(), &w)).unwrap();
    let got = pollster::block_on(vit.classify(&io.tensor_f32("images").unwrap())).unwrap();
    let diff = softmoe::compare::max_abs_diff(&got.logits.data, &io.tensor_f32("logits").unwrap().data).unwrap();
    eprintln!("converted torchvision ViT against PyTorch's logits: {:.2e}", diff.max);
    diff.within("converted torchvision ViT against PyTorch", 1e-5).unwrap_or_else(|e| panic!("{e}"));

    // Refusals: one line, exit 2, nothing written.
    let layer = soft_moe_pytorch_case().join("model.safetensors");
    let file = dir.join("file");
    std::fs::write(&file, b"old").unwrap();
    let s = |p: &Path| p.as_os_str().to_owned();
    let cases: Vec<(&str, Vec<std::ffi::OsString>, &str)> = vec![
        ("no heads", vec!["--from".into(), "torchvision-vit".into(), s(&state_dict), s(&dir.join("a"))], "--num-heads is required"),
        (
            "bad heads",
            vec!["--from".into(), "torchvision-vit".into(), "--num-heads".into(), "two".into(), s(&state_dict), s(&dir.join("a"))],
            "`two` is not a positive integer",
        ),
        (
            "heads not dividing",
            vec!["--from".into(), "torchvision-vit".into(), "--num-heads".into(), "3".into(), s(&state_dict), s(&dir.join("a"))],
            "a divisor of hidden_dim 16",
        ),
        (
            "heads for a layer",
            vec!["--from".into(), "soft-moe-pytorch".into(), "--num-heads".into(), "2".into(), s(&layer), s(&dir.join("a"))],
            "--num-heads is for --from torchvision-vit",
        ),
        (
            "a layer as a ViT",
            vec!["--from".into(), "torchvision-vit".into(), "--num-heads".into(), "2".into(), s(&layer), s(&dir.join("a"))],
            "missing tensor `conv_proj.weight`",
        ),
        (
            "a ViT as a layer",
            vec!["--from".into(), "soft-moe-pytorch".into(), s(&state_dict), s(&dir.join("a"))],
            "convert it with `--from torchvision-vit --num-heads H`",
        ),
        (
            "OUT_DIR a file",
            vec!["--from".into(), "torchvision-vit".into(), "--num-heads".into(), "2".into(), s(&state_dict), s(&file)],
            "OUT_DIR is a file",
        ),
    ];
    for (name, args, needle) in cases {
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        let r = convert(&args);
        let stderr = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{name}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{name}: {stderr}");
        assert!(stderr.contains(needle), "{name}: stderr does not mention `{needle}`: {stderr}");
    }
    assert!(!dir.join("a").exists());
    assert_eq!(std::fs::read(&file).unwrap(), b"old");
}
