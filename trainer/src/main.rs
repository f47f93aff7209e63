//! `trainer`: trains the Soft MoE ViT and the dense ViT of SPEC §2 on Fashion-MNIST with candle
//! (CPU), and writes float32 safetensors with vmoe's names plus config.json.
//!
//!     trainer train --model soft-moe|dense|tokens-choice|experts-choice [--data DIR] [--epochs N] [--out DIR] ...
//!     trainer eval --model weights/<name> [--data DIR]
//!     trainer predict --model weights/<name> [--data DIR]
//!     trainer samples [--data DIR] [--out weights]

use trainer::step::{lr_at, optimizers, parallel_step, LossWeights, WORKERS};
use trainer::{data, model};

use candle_core::{Device, Tensor, Var};
use candle_nn::Optimizer;
use model::{Config, DropPath, Moe, Rng, Router, Weights};
use softmoe::flops::vit_gemm_flops_per_image;
use softmoe::model::{argmax, VitConfig};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const USAGE: &str = "usage:
  trainer train --model soft-moe|dense|tokens-choice|experts-choice [--data DIR] [--epochs N] [--out DIR] [--batch-size N]
                [--lr F] [--weight-decay F] [--warmup-epochs F] [--seed N] [--hidden N]
                [--layers N] [--heads N] [--mlp N] [--experts N] [--slots N]
                [--augment none|flip|shift|flip+shift] [--max-steps N] [--threads N]
                [--router-k N] [--capacity-factor F] [--capacity-multiple-of N] [--group-size IMAGES] [--aux-weight F]
                [--label-smoothing F] [--drop-path F]
  trainer eval --model DIR [--data DIR]
  trainer predict --model DIR [--data DIR]   (writes DIR/test_predictions.safetensors)
  trainer samples [--data DIR] [--out DIR]   (writes DIR/samples.safetensors and, for each
                                             model dir under DIR, its sample_logits)";

/// Flag arguments (`--key value`).
struct Args(HashMap<String, String>);

impl Args {
    fn parse(args: &[String]) -> Res<Self> {
        let mut m = HashMap::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let key = a.strip_prefix("--").ok_or_else(|| format!("unexpected argument {a}\n{USAGE}"))?;
            let val = it.next().ok_or_else(|| format!("--{key} needs a value"))?;
            m.insert(key.to_string(), val.clone());
        }
        Ok(Args(m))
    }
    fn str(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(|s| s.as_str())
    }
    fn get<T: std::str::FromStr>(&self, k: &str, default: T) -> Res<T> {
        match self.0.get(k) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("bad value for --{k}: {v}").into()),
        }
    }
}

/// Keep freed buffers in the heap: by default glibc returns every buffer over 128 KiB to the
/// kernel, and the page faults of re-allocating them each step cost a tenth of training time.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    extern "C" {
        fn mallopt(param: i32, value: i32) -> i32;
    }
    const M_TRIM_THRESHOLD: i32 = -1;
    const M_MMAP_THRESHOLD: i32 = -3;
    // SAFETY: mallopt only changes allocator thresholds; called before any other thread exists.
    unsafe {
        mallopt(M_MMAP_THRESHOLD, 1 << 30);
        mallopt(M_TRIM_THRESHOLD, i32::MAX);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

fn main() {
    keep_freed_memory();
    let argv: Vec<String> = std::env::args().skip(1).collect();
    // Parallelism comes from our own data-parallel worker threads; candle itself runs
    // single-threaded in each (its spin-barrier pool gains nothing on 2 cores and collapses
    // when the cores are shared). Must be set before the first candle op.
    let threads = argv
        .iter()
        .position(|a| a == "--threads")
        .and_then(|i| argv.get(i + 1))
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&t| t > 0)
        .unwrap_or(2);
    WORKERS.store(threads, std::sync::atomic::Ordering::Relaxed);
    std::env::set_var("CANDLE_NUM_THREADS", "1");
    std::env::set_var("RAYON_NUM_THREADS", "1");
    let result = match argv.first().map(|s| s.as_str()) {
        Some("train") => Args::parse(&argv[1..]).and_then(|a| train(&a)),
        Some("eval") => Args::parse(&argv[1..]).and_then(|a| eval_cmd(&a)),
        Some("predict") => Args::parse(&argv[1..]).and_then(|a| predict_cmd(&a)),
        Some("samples") => Args::parse(&argv[1..]).and_then(|a| samples_cmd(&a)),
        _ => Err(USAGE.into()),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

/// Training recipe (defaults reproduce the shipped weights; the sparse ones also need
/// `--capacity-multiple-of 1`, the capacity rule they were trained with).
struct Recipe {
    epochs: usize,
    batch_size: usize,
    lr: f64,
    weight_decay: f64,
    warmup_epochs: f64,
    seed: u64,
    flip: bool,
    shift: bool,
    max_steps: Option<usize>,
    /// Weight of the sparse routers' load-balancing loss.
    aux_weight: f64,
    /// Label smoothing ε: the target puts 1 − ε on the label and ε spread over all classes.
    label_smoothing: f64,
    /// Stochastic depth: the last block's residual branches are dropped with this probability.
    drop_path: f64,
}

impl Recipe {
    fn loss(&self) -> LossWeights {
        LossWeights { label_smoothing: self.label_smoothing, aux_weight: self.aux_weight }
    }
}

fn train(a: &Args) -> Res<()> {
    let kind = a.str("model").ok_or("train needs --model soft-moe|dense|tokens-choice|experts-choice")?;
    let capacity_factor = a.get("capacity-factor", 1.0)?;
    // vmoe's rule: capacities rounded up to a multiple of 4 by default; the shipped sparse models
    // were trained with 1 (no rounding), which config.json records.
    let capacity_multiple_of = a.get("capacity-multiple-of", softmoe::routing::VMOE_CAPACITY_MULTIPLE_OF)?;
    let group_size = a.get("group-size", 8)?;
    let moe = match kind {
        "soft-moe" => Moe::Soft,
        "dense" => Moe::Dense,
        "tokens-choice" => {
            Moe::Sparse { router: Router::TokensChoice { k: a.get("router-k", 1)?, capacity_factor, capacity_multiple_of }, group_size }
        }
        "experts-choice" => Moe::Sparse { router: Router::ExpertsChoice { capacity_factor, capacity_multiple_of }, group_size },
        k => return Err(format!("unknown model {k}").into()),
    };
    let cfg = model::config(
        a.get("hidden", 64)?,
        a.get("layers", 4)?,
        a.get("heads", 4)?,
        a.get("mlp", 128)?,
        a.get("experts", 8)?,
        a.get("slots", 2)?,
        moe,
    );
    if let Some(r) = cfg.router {
        r.validate(cfg.num_experts)?;
    }
    let augment = a.str("augment").unwrap_or("flip");
    let recipe = Recipe {
        epochs: a.get("epochs", 24)?,
        batch_size: a.get("batch-size", 128)?,
        lr: a.get("lr", 4e-3)?,
        weight_decay: a.get("weight-decay", 0.05)?,
        warmup_epochs: a.get("warmup-epochs", 0.5)?,
        seed: a.get("seed", 42)?,
        flip: augment.contains("flip"),
        shift: augment.contains("shift"),
        max_steps: a.str("max-steps").map(|s| s.parse()).transpose()?,
        aux_weight: a.get("aux-weight", 0.01)?,
        label_smoothing: a.get("label-smoothing", 0.1)?,
        drop_path: a.get("drop-path", 0.0)?,
    };
    if !(0.0..1.0).contains(&recipe.drop_path) {
        return Err(format!("--drop-path {} is outside [0, 1)", recipe.drop_path).into());
    }
    if !(0.0..1.0).contains(&recipe.label_smoothing) {
        return Err(format!("--label-smoothing {} is outside [0, 1)", recipe.label_smoothing).into());
    }
    let default_out = match moe {
        Moe::Soft => "weights/soft-moe-vit".to_string(),
        Moe::Dense => "weights/dense-vit".to_string(),
        Moe::Sparse { .. } => format!("weights/{kind}-vit"),
    };
    let out = PathBuf::from(a.str("out").unwrap_or(&default_out));
    let ds = data::load(a.str("data").map(Path::new))?;
    let dev = Device::Cpu;
    eprintln!(
        "model {kind}: d={} layers={} heads={} mlp={} moe_layers={:?} experts={} slots/expert={} \
         params={} flops/image={}",
        cfg.hidden_size,
        cfg.num_layers,
        cfg.num_heads,
        cfg.mlp_dim,
        cfg.moe_layers,
        cfg.num_experts,
        cfg.slots_per_expert,
        model::parameter_count(&cfg),
        vit_gemm_flops_per_image(&cfg)
    );
    let vars = model::init_params(&cfg, recipe.seed, &dev)?;
    let (secs, epochs_done) = train_loop(&cfg, &vars, &ds, &recipe, &dev)?;
    let w = Weights::from_vars(&vars);
    let acc = evaluate(&w, &cfg, &ds, &dev)?;
    println!("test accuracy: {acc:.4}  (train {secs:.1} s, {epochs_done} epochs)");
    if recipe.max_steps.is_some() {
        eprintln!("--max-steps given: not writing weights");
        return Ok(());
    }
    std::fs::create_dir_all(&out)?;
    candle_core::safetensors::save(&w.0, out.join("model.safetensors"))?;
    let mut conf: serde_json::Value = serde_json::from_str(&cfg.to_json())?;
    conf["training"] = serde_json::json!({
        "test_accuracy": (acc * 1e4).round() / 1e4,
        "train_seconds": (secs * 10.0).round() / 10.0,
        "epochs": epochs_done,
        "parameters": model::parameter_count(&cfg),
        "flops_per_image": vit_gemm_flops_per_image(&cfg),
        "seed": recipe.seed,
        "batch_size": recipe.batch_size,
        "lr": recipe.lr,
        "aux_weight": if cfg.router.is_some() { recipe.aux_weight } else { 0.0 },
        "augment": augment,
        "label_smoothing": recipe.label_smoothing,
        "drop_path": recipe.drop_path,
        "weight_decay": recipe.weight_decay,
    });
    std::fs::write(out.join("config.json"), serde_json::to_string_pretty(&conf)? + "\n")?;
    write_sample_logits(&w, &cfg, &ds, &out, &dev)?;
    write_test_predictions(&w, &cfg, &ds, &out, &dev)?;
    eprintln!("wrote {}", out.display());
    Ok(())
}

/// Copy image `src` into `dst` with optional horizontal flip and shift (zero fill).
fn augment_into(src: &[f32], dst: &mut [f32], flip: bool, dx: i32, dy: i32) {
    for y in 0..28i32 {
        for x in 0..28i32 {
            let sy = y - dy;
            let sx0 = x - dx;
            let sx = if flip { 27 - sx0 } else { sx0 };
            dst[(y * 28 + x) as usize] = if (0..28).contains(&sy) && (0..28).contains(&sx) { src[(sy * 28 + sx) as usize] } else { 0.0 };
        }
    }
}

fn train_loop(cfg: &Config, vars: &BTreeMap<String, Var>, ds: &data::FashionMnist, r: &Recipe, dev: &Device) -> Res<(f64, usize)> {
    let (px, labels) = data::flat(&ds.train);
    let n = labels.len();
    let steps_per_epoch = n.div_ceil(r.batch_size);
    let total = r.max_steps.unwrap_or(steps_per_epoch * r.epochs);
    let warmup = ((r.warmup_epochs * steps_per_epoch as f64) as usize).min(total / 2);
    let (mut opt_d, mut opt_n) = optimizers(vars, r.lr, r.weight_decay)?;
    let mut rng = Rng::new(r.seed.wrapping_add(1));
    let mut order: Vec<usize> = (0..n).collect();
    let mut step = 0;
    let start = Instant::now();
    let mut epochs_done = 0;
    let mut batch = vec![0f32; r.batch_size * 784];
    'outer: for epoch in 0..r.epochs {
        rng.shuffle(&mut order);
        let (mut loss_sum, mut correct, mut seen) = (0f64, 0usize, 0usize);
        let epoch_start = Instant::now();
        for (bi, idx) in order.chunks(r.batch_size).enumerate() {
            if step >= total {
                break 'outer;
            }
            let bs = idx.len();
            let mut ys = Vec::with_capacity(bs);
            for (j, &i) in idx.iter().enumerate() {
                let flip = r.flip && rng.below(2) == 1;
                let (dx, dy) = if r.shift { (rng.below(5) as i32 - 2, rng.below(5) as i32 - 2) } else { (0, 0) };
                augment_into(&px[i * 784..(i + 1) * 784], &mut batch[j * 784..(j + 1) * 784], flip, dx, dy);
                ys.push(labels[i]);
            }
            let lr = lr_at(step, total, warmup, r.lr);
            opt_d.set_learning_rate(lr);
            opt_n.set_learning_rate(lr);
            let w = Weights::from_vars(vars);
            let keep = DropPath::sample(&mut rng, bs, cfg.num_layers, r.drop_path);
            let (grads, loss, pred) = parallel_step(&w, cfg, (&batch[..bs * 784], &ys), (&keep, r.drop_path > 0.0), vars, r.loss(), dev)?;
            opt_d.step(&grads)?;
            opt_n.step(&grads)?;
            step += 1;
            correct += pred.iter().zip(&ys).filter(|(p, t)| p == t).count();
            loss_sum += loss * bs as f64;
            seen += bs;
            if bi % 10 == 0 || seen == n {
                let ips = seen as f64 / epoch_start.elapsed().as_secs_f64();
                eprint!(
                    "\repoch {}/{} step {}/{} loss {:.4} acc {:.4} lr {:.2e} {:.0} img/s  ",
                    epoch + 1,
                    r.epochs,
                    step,
                    total,
                    loss_sum / seen as f64,
                    correct as f64 / seen as f64,
                    lr,
                    ips
                );
                let _ = std::io::stderr().flush();
            }
        }
        epochs_done = epoch + 1;
        eprintln!(
            "\nepoch {} done: loss {:.4} train acc {:.4} elapsed {:.1} s",
            epoch + 1,
            loss_sum / seen.max(1) as f64,
            correct as f64 / seen.max(1) as f64,
            start.elapsed().as_secs_f64()
        );
    }
    Ok((start.elapsed().as_secs_f64(), epochs_done))
}

/// Images per forward when evaluating: a multiple of every group size used, so that sparse
/// routers see groups of consecutive test images whatever the chunking.
const EVAL_CHUNK: usize = 256;

/// Logits for pixels [N*784] in batches.
fn logits_of(w: &Weights, cfg: &Config, px: &[f32], dev: &Device) -> Res<Vec<Vec<f32>>> {
    let n = px.len() / 784;
    let chunks: Vec<usize> = (0..n).step_by(EVAL_CHUNK).collect();
    let per_worker = chunks.len().div_ceil(trainer::step::workers()).max(1);
    let parts: Vec<candle_core::Result<Vec<Vec<f32>>>> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .chunks(per_worker)
            .map(|starts| {
                s.spawn(move || {
                    let mut out = Vec::new();
                    for &start in starts {
                        let bs = (n - start).min(EVAL_CHUNK);
                        let x = Tensor::from_slice(&px[start * 784..(start + bs) * 784], (bs, 28, 28), dev)?;
                        out.extend(model::forward(&x, w, cfg)?.to_vec2::<f32>()?);
                    }
                    Ok(out)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("worker panicked")).collect()
    });
    let mut out = Vec::with_capacity(n);
    for p in parts {
        out.extend(p?);
    }
    Ok(out)
}

fn evaluate(w: &Weights, cfg: &Config, ds: &data::FashionMnist, dev: &Device) -> Res<f64> {
    let (px, labels) = data::flat(&ds.test);
    let logits = logits_of(w, cfg, px, dev)?;
    let correct = logits.iter().zip(&labels).filter(|(l, &t)| argmax(l) == t as usize).count();
    Ok(correct as f64 / labels.len() as f64)
}

fn load_model(dir: &Path, dev: &Device) -> Res<(Config, Weights)> {
    let path = dir.join("config.json");
    let cfg = VitConfig::from_json(&std::fs::read_to_string(&path)?, &path.display().to_string())?;
    model::trainable(&cfg)?;
    let w = Weights(candle_core::safetensors::load(dir.join("model.safetensors"), dev)?);
    w.check(&cfg)?;
    Ok((cfg, w))
}

fn eval_cmd(a: &Args) -> Res<()> {
    let dir = PathBuf::from(a.str("model").ok_or("eval needs --model DIR")?);
    let dev = Device::Cpu;
    let (cfg, w) = load_model(&dir, &dev)?;
    let ds = data::load(a.str("data").map(Path::new))?;
    let t = Instant::now();
    let acc = evaluate(&w, &cfg, &ds, &dev)?;
    eprintln!("evaluated 10000 test images in {:.1} s", t.elapsed().as_secs_f64());
    println!("accuracy: {acc:.4}");
    Ok(())
}

/// Writes `test_predictions.safetensors` into `dir`: for each of the 10,000 test images, in the split's
/// order (class by class), candle's predicted class (`predictions`, f32 [10000]) and the gap between
/// its largest and second-largest logit (`margins`, f32 [10000]), from the same chunked forward as
/// `evaluate` (so sparse models route the same groups). Returns the test accuracy they imply.
fn write_test_predictions(w: &Weights, cfg: &Config, ds: &data::FashionMnist, dir: &Path, dev: &Device) -> Res<f64> {
    let (px, labels) = data::flat(&ds.test);
    let logits = logits_of(w, cfg, px, dev)?;
    let predictions: Vec<f32> = logits.iter().map(|l| argmax(l) as f32).collect();
    let margins: Vec<f32> = logits
        .iter()
        .map(|l| {
            let best = argmax(l);
            let second = l.iter().enumerate().filter(|&(i, _)| i != best).map(|(_, &v)| v).fold(f32::NEG_INFINITY, f32::max);
            l[best] - second
        })
        .collect();
    let correct = predictions.iter().zip(&labels).filter(|(p, &t)| **p == t as f32).count();
    let n = labels.len();
    let m = HashMap::from([
        ("predictions".to_string(), Tensor::from_vec(predictions, n, dev)?),
        ("margins".to_string(), Tensor::from_vec(margins, n, dev)?),
    ]);
    candle_core::safetensors::save(&m, dir.join("test_predictions.safetensors"))?;
    Ok(correct as f64 / n as f64)
}

fn predict_cmd(a: &Args) -> Res<()> {
    let dir = PathBuf::from(a.str("model").ok_or("predict needs --model DIR")?);
    let dev = Device::Cpu;
    let (cfg, w) = load_model(&dir, &dev)?;
    let ds = data::load(a.str("data").map(Path::new))?;
    let acc = write_test_predictions(&w, &cfg, &ds, &dir, &dev)?;
    eprintln!("wrote {}", dir.join("test_predictions.safetensors").display());
    let conf: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json"))?)?;
    if let Some(recorded) = conf["training"]["test_accuracy"].as_f64() {
        let same = (acc * 1e4).round() / 1e4 == recorded;
        eprintln!("config.json records test accuracy {recorded:.4}: {}", if same { "the same" } else { "DIFFERENT" });
    }
    println!("accuracy: {acc:.4}");
    Ok(())
}

/// The 64 sample images: sample i is test image i/10 of class i%10.
fn sample_set(ds: &data::FashionMnist) -> (Vec<f32>, Vec<f32>) {
    let mut px = Vec::with_capacity(64 * 784);
    let mut labels = Vec::with_capacity(64);
    for i in 0..64 {
        let c = i % 10;
        px.extend_from_slice(data::test_image(ds, c, i / 10));
        labels.push(c as f32);
    }
    (px, labels)
}

fn write_sample_logits(w: &Weights, cfg: &Config, ds: &data::FashionMnist, dir: &Path, dev: &Device) -> Res<()> {
    let (px, _) = sample_set(ds);
    let x = Tensor::from_slice(&px, (64, 28, 28), dev)?;
    let logits = model::forward(&x, w, cfg)?;
    let m = HashMap::from([("logits".to_string(), logits)]);
    candle_core::safetensors::save(&m, dir.join("sample_logits.safetensors"))?;
    Ok(())
}

fn samples_cmd(a: &Args) -> Res<()> {
    let out = PathBuf::from(a.str("out").unwrap_or("weights"));
    let ds = data::load(a.str("data").map(Path::new))?;
    let dev = Device::Cpu;
    let (px, labels) = sample_set(&ds);
    std::fs::create_dir_all(&out)?;
    let m = HashMap::from([
        ("images".to_string(), Tensor::from_vec(px, (64, 28, 28), &dev)?),
        ("labels".to_string(), Tensor::from_vec(labels, 64, &dev)?),
    ]);
    candle_core::safetensors::save(&m, out.join("samples.safetensors"))?;
    eprintln!("wrote {}", out.join("samples.safetensors").display());
    let mut entries: Vec<_> = std::fs::read_dir(&out)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let dir = e.path();
        if dir.join("config.json").is_file() && dir.join("model.safetensors").is_file() {
            let (cfg, w) = load_model(&dir, &dev)?;
            write_sample_logits(&w, &cfg, &ds, &dir, &dev)?;
            eprintln!("wrote {}", dir.join("sample_logits.safetensors").display());
        }
    }
    Ok(())
}
