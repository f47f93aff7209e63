//! `softmoe train`: trains a ViT (Soft MoE or dense) on Fashion-MNIST on the GPU with the candle
//! trainer's recipe (its initialisation, batch order, flips, label smoothing, AdamW with warm-up and
//! cosine decay), evaluates on the test split after every epoch, and checkpoints `config.json`,
//! `model.safetensors` (what every other command loads) and `optimizer.safetensors` (AdamW's moments,
//! for `--resume`) into `--out` after every epoch, each written to a temporary file and renamed.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use softmoe::data::{self, PIXELS};
use softmoe::kernels::adamw::Adamw;
use softmoe::model::{Vit, VitConfig};
use softmoe::train::data::{Augment, Batches};
use softmoe::train::init::init_weights;
use softmoe::train::schedule::{lr_at, warmup_steps};
use softmoe::train::{TrainOptions, Trainer};
use softmoe::weights::params::ParamLayout;
use softmoe::weights::safetensors::{serialize, write_atomic};
use softmoe::{Error, GpuContext, SafeTensors, Tensor, VitWeights};

use super::args::Args;

/// The run's recipe (defaults: the candle trainer's).
struct Recipe {
    epochs: usize,
    batch: usize,
    lr: f64,
    weight_decay: f64,
    warmup_epochs: f64,
    seed: u64,
    smoothing: f32,
    clip: f32,
    augment: Augment,
    /// At most this many batches per epoch (quick runs and tests).
    steps_per_epoch: Option<usize>,
    eval_sample: Option<usize>,
}

fn input_error(what: impl Into<String>, expected: impl Into<String>, found: impl std::fmt::Display) -> Error {
    Error::Input { what: what.into(), expected: expected.into(), found: found.to_string() }
}

fn number<T: std::str::FromStr>(args: &mut Args, name: &str, default: T, ok: impl Fn(&T) -> bool, what: &str) -> Result<T, Error> {
    match args.option(name)? {
        None => Ok(default),
        Some(s) => s.parse::<T>().ok().filter(|v| ok(v)).ok_or_else(|| Error::Usage(format!("--{name} needs {what}, not `{s}`"))),
    }
}

pub fn run(mut args: Args) -> Result<(), Error> {
    let config_path = args.option("config")?.map(PathBuf::from);
    let resume = args.option("resume")?.map(PathBuf::from);
    let data_dir = PathBuf::from(args.option("data")?.unwrap_or_else(|| "target/fashion-mnist".into()));
    let out = PathBuf::from(args.option("out")?.unwrap_or_else(|| "trained".into()));
    let r = Recipe {
        epochs: number(&mut args, "epochs", 24usize, |&v| v > 0, "a positive number of epochs")?,
        batch: number(&mut args, "batch-size", 128usize, |&v| v > 0, "a positive batch size")?,
        lr: number(&mut args, "lr", 4e-3f64, |v| v.is_finite() && *v > 0.0, "a positive learning rate")?,
        weight_decay: number(&mut args, "weight-decay", 0.05f64, |v| v.is_finite() && *v >= 0.0, "a weight decay ≥ 0")?,
        warmup_epochs: number(&mut args, "warmup-epochs", 0.5f64, |v| v.is_finite() && *v >= 0.0, "a number of epochs ≥ 0")?,
        seed: number(&mut args, "seed", 42u64, |_| true, "an integer seed")?,
        smoothing: number(&mut args, "label-smoothing", 0.1f32, |v| (0.0..1.0).contains(v), "a value in [0, 1)")?,
        clip: number(&mut args, "clip-norm", 0.0f32, |v| v.is_finite() && *v >= 0.0, "a norm ≥ 0 (0: no clipping)")?,
        augment: match args.option("augment")?.as_deref() {
            None | Some("flip") => Augment::Flip,
            Some("none") => Augment::None,
            Some(a) => return Err(Error::Usage(format!("--augment needs `flip` or `none`, not `{a}`"))),
        },
        steps_per_epoch: args
            .option("steps-per-epoch")?
            .map(|s| {
                s.parse::<usize>()
                    .ok()
                    .filter(|&v| v > 0)
                    .ok_or_else(|| Error::Usage(format!("--steps-per-epoch needs a positive number, not `{s}`")))
            })
            .transpose()?,
        eval_sample: args
            .option("eval-sample")?
            .map(|s| {
                s.parse::<usize>()
                    .ok()
                    .filter(|&v| v > 0)
                    .ok_or_else(|| Error::Usage(format!("--eval-sample needs a positive number, not `{s}`")))
            })
            .transpose()?,
    };
    args.finish()?;

    // The model: fresh from a config, or a checkpoint to go on from.
    let (weights, state) = match (&config_path, &resume) {
        (Some(_), Some(_)) => {
            return Err(Error::Usage("give --config (train from scratch) or --resume DIR (go on from a checkpoint), not both".into()))
        }
        (None, None) => return Err(Error::Usage("--config FILE (a model's config.json) or --resume DIR is required".into())),
        (Some(path), None) => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::Io { path: path.clone(), source: e })?;
            let config = VitConfig::from_json(&text, &path.display().to_string())?;
            (init_weights(&config, r.seed)?, None)
        }
        (None, Some(dir)) => {
            let w = VitWeights::load(dir)?;
            let state = load_state(dir, &w.config)?;
            (w, state)
        }
    };
    let config = weights.config.clone();
    if config.image_size * config.image_size * config.channels != PIXELS || config.num_classes != 10 {
        return Err(Error::Config {
            context: config_path.as_ref().or(resume.as_ref()).map_or(String::new(), |p| p.display().to_string()),
            key: "image_size".into(),
            expected: "28 with 1 channel and 10 classes (Fashion-MNIST)".into(),
            found: format!("{} with {} channels and {} classes", config.image_size, config.channels, config.num_classes),
        });
    }
    let set = data::load(&data_dir).map_err(|e| match e {
        e @ Error::Input { .. } if !data_dir.exists() => Error::Usage(format!(
            "{e} (`cargo xtask data` fetches Fashion-MNIST into target/fashion-mnist; --data DIR names another folder)"
        )),
        e => e,
    })?;
    let n = set.train.len();
    let steps_per_epoch = n.div_ceil(r.batch).min(r.steps_per_epoch.unwrap_or(usize::MAX));
    let total = steps_per_epoch * r.epochs;
    let warmup = warmup_steps(r.warmup_epochs, steps_per_epoch, total);
    let (start_step, start_epoch, moments) = match &state {
        Some(s) => (s.steps, s.epochs, Some(s.moments.as_slice())),
        None => (0, 0, None),
    };
    if start_epoch >= r.epochs {
        return Err(Error::Usage(format!("the checkpoint has done {start_epoch} epochs already; --epochs {} leaves none to do", r.epochs)));
    }

    let ctx = pollster::block_on(GpuContext::new())?;
    let options = TrainOptions {
        label_smoothing: r.smoothing,
        adamw: Adamw { weight_decay: r.weight_decay, ..Adamw::default() },
        max_grad_norm: r.clip,
    };
    let mut trainer = pollster::block_on(Trainer::with_state(ctx.clone(), &weights, options, moments, start_step as u64))?;
    let layout = ParamLayout::new(&config)?;
    eprintln!(
        "training {} ViT ({} parameters) on {} ({:?}): {n} images, {} epochs of {steps_per_epoch} steps of {}, lr {} (warm-up {warmup} steps, cosine), seed {}",
        config.moe_type(),
        layout.count(),
        ctx.info.name,
        ctx.info.backend,
        r.epochs,
        r.batch,
        r.lr,
        r.seed
    );
    let mut batches = Batches::new(n, r.seed, r.augment);
    let mut scratch = Vec::new();
    for _ in 0..start_epoch {
        // The epochs done draw what they drew, so the next one shuffles as an unbroken run would.
        let order = batches.next_epoch();
        for idx in order.chunks(r.batch).take(steps_per_epoch) {
            batches.fill(&set.train.images, config.image_size, idx, &mut scratch);
        }
    }
    let labels: Vec<u32> = set.train.labels.iter().map(|&l| l as u32).collect();
    std::fs::create_dir_all(&out).map_err(|e| Error::Io { path: out.clone(), source: e })?;
    let mut losses: Vec<f64> = state.as_ref().map(|s| s.losses.clone()).unwrap_or_default();
    let mut step = start_step;
    let mut seconds = state.as_ref().map_or(0.0, |s| s.seconds);
    let mut accuracy = None;
    let mut epochs_done = start_epoch;
    let style = ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg} ETA {eta}")
        .map_err(|e| Error::Internal(e.to_string()))?
        .progress_chars("=> ");
    let terminal = std::io::stderr().is_terminal();
    for epoch in start_epoch..r.epochs {
        let order = batches.next_epoch();
        let bar = ProgressBar::new(steps_per_epoch as u64).with_style(style.clone()).with_prefix(format!("{}/{}", epoch + 1, r.epochs));
        let t = Instant::now();
        let (mut seen, mut loss_sum, mut correct) = (0usize, 0.0f64, 0usize);
        for idx in order.chunks(r.batch).take(steps_per_epoch) {
            batches.fill(&set.train.images, config.image_size, idx, &mut scratch);
            let y: Vec<u32> = idx.iter().map(|&i| labels[i]).collect();
            let lr = lr_at(step, total, warmup, r.lr);
            let o = pollster::block_on(trainer.step(&scratch, &y, lr))?;
            step += 1;
            losses.push(o.loss);
            seen += idx.len();
            loss_sum += o.loss * idx.len() as f64;
            correct += o.correct;
            bar.inc(1);
            let rate = seen as f64 / t.elapsed().as_secs_f64();
            bar.set_message(format!("loss {:.4} · {rate:.0} images/s", loss_sum / seen as f64));
            let in_epoch = bar.position();
            if !terminal && in_epoch.is_multiple_of(50) {
                // No bar when stderr is a file or a pipe: a line every 50 steps instead.
                eprintln!(
                    "epoch {}/{}: step {in_epoch}/{steps_per_epoch}, loss {:.4}, {rate:.1} images/s",
                    epoch + 1,
                    r.epochs,
                    loss_sum / seen as f64
                );
            }
        }
        bar.finish_and_clear();
        let epoch_seconds = t.elapsed().as_secs_f64();
        seconds += epoch_seconds;
        epochs_done = epoch + 1;
        let w = pollster::block_on(trainer.weights())?;
        let (acc, eval_n) = evaluate(&ctx, &w, &set.test, r.eval_sample)?;
        accuracy = Some(acc);
        eprintln!(
            "epoch {}/{}: loss {:.4}, train accuracy {:.4}, {:.1} images/s ({seen} images in {epoch_seconds:.1} s); test accuracy {acc:.4} ({eval_n} images)",
            epoch + 1,
            r.epochs,
            loss_sum / seen.max(1) as f64,
            correct as f64 / seen.max(1) as f64,
            seen as f64 / epoch_seconds
        );
        let record = TrainingRecord {
            r: &r,
            epochs: epochs_done,
            steps: step,
            seconds,
            accuracy: acc,
            eval_images: eval_n,
            adapter: &ctx.info.name,
            parameters: layout.count(),
        };
        checkpoint(&out, &w, &pollster::block_on(trainer.moments())?, &losses, &record)?;
    }
    println!("epochs: {epochs_done}");
    println!("steps: {step}");
    println!("train seconds: {seconds:.1}");
    if let Some(acc) = accuracy {
        println!("test accuracy: {acc:.4}");
    }
    println!("wrote {}", out.display());
    Ok(())
}

/// Accuracy on the test split (or `sample` images spread evenly over it) with the inference ViT on
/// the trained weights: the model as `softmoe eval` and `classify` will run it.
fn evaluate(ctx: &std::sync::Arc<GpuContext>, w: &VitWeights, test: &data::Split, sample: Option<usize>) -> Result<(f64, usize), Error> {
    let vit = pollster::block_on(Vit::new(ctx.clone(), w))?;
    let n = sample.unwrap_or(test.len()).min(test.len());
    let indices: Vec<usize> = (0..n).map(|i| i * test.len() / n).collect();
    let side = w.config.image_size;
    let mut correct = 0;
    for chunk in indices.chunks(500) {
        let pixels: Vec<f32> = chunk.iter().flat_map(|&i| test.image(i).iter().copied()).collect();
        let out = pollster::block_on(vit.classify(&Tensor::new(vec![chunk.len(), side, side], pixels)?))?;
        correct += out.predictions.iter().zip(chunk).filter(|(p, &i)| **p == test.labels[i] as usize).count();
    }
    Ok((correct as f64 / n as f64, n))
}

struct TrainingRecord<'a> {
    r: &'a Recipe,
    epochs: usize,
    steps: usize,
    seconds: f64,
    accuracy: f64,
    eval_images: usize,
    adapter: &'a str,
    parameters: usize,
}

/// What `--resume` reads back.
struct State {
    moments: Vec<Vec<f32>>,
    steps: usize,
    epochs: usize,
    seconds: f64,
    losses: Vec<f64>,
}

const OPTIMIZER_FILE: &str = "optimizer.safetensors";
const LOSSES_FILE: &str = "losses.txt";

/// Writes the checkpoint: every file to a temporary name first, then the renames, so an interrupted
/// run leaves the previous checkpoint or this one, never a half-written file.
fn checkpoint(out: &Path, w: &VitWeights, moments: &[Vec<f32>], losses: &[f64], rec: &TrainingRecord) -> Result<(), Error> {
    let r = rec.r;
    let mut config: serde_json::Value = serde_json::from_str(&w.config.to_json()).map_err(|e| Error::Internal(e.to_string()))?;
    config["training"] = serde_json::json!({
        "trainer": "softmoe train (WebGPU)",
        "adapter": rec.adapter,
        "test_accuracy": (rec.accuracy * 1e4).round() / 1e4,
        "test_images": rec.eval_images,
        "train_seconds": (rec.seconds * 10.0).round() / 10.0,
        "epochs": rec.epochs,
        "steps": rec.steps,
        "parameters": rec.parameters,
        "seed": r.seed,
        "batch_size": r.batch,
        "lr": r.lr,
        "weight_decay": r.weight_decay,
        "warmup_epochs": r.warmup_epochs,
        // The f32s' shortest decimals (0.1, not 0.10000000149011612).
        "label_smoothing": r.smoothing.to_string().parse::<f64>().unwrap_or(r.smoothing.into()),
        "clip_norm": r.clip.to_string().parse::<f64>().unwrap_or(r.clip.into()),
        "augment": if r.augment == Augment::Flip { "flip" } else { "none" },
        "steps_per_epoch": r.steps_per_epoch,
    });
    let layout = ParamLayout::new(&w.config)?;
    let tensors: Vec<(String, Tensor)> =
        layout.specs.iter().zip(moments).map(|(s, m)| (s.name.clone(), Tensor { shape: vec![2, s.len], data: m.clone() })).collect();
    let refs: Vec<(&str, &Tensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let meta = BTreeMap::from([
        ("steps".to_string(), rec.steps.to_string()),
        ("epochs".to_string(), rec.epochs.to_string()),
        ("seconds".to_string(), rec.seconds.to_string()),
    ]);
    let losses_text: String = losses.iter().map(|l| format!("{l:?}\n")).collect();
    let files: [(&str, Vec<u8>); 4] = [
        ("model.safetensors", w.to_safetensors()),
        (OPTIMIZER_FILE, serialize(&refs, &meta)),
        (LOSSES_FILE, losses_text.into_bytes()),
        ("config.json", (serde_json::to_string_pretty(&config).map_err(|e| Error::Internal(e.to_string()))? + "\n").into_bytes()),
    ];
    let tmp = |name: &str| out.join(format!(".{name}.partial"));
    for (name, bytes) in &files {
        write_atomic(&tmp(name), bytes)?;
    }
    for (name, _) in &files {
        std::fs::rename(tmp(name), out.join(name)).map_err(|e| Error::Io { path: out.join(name), source: e })?;
    }
    Ok(())
}

fn load_state(dir: &Path, config: &VitConfig) -> Result<Option<State>, Error> {
    let path = dir.join(OPTIMIZER_FILE);
    if !path.exists() {
        return Err(input_error(path.display().to_string(), "the optimizer state `softmoe train` writes beside the model", "no such file"));
    }
    let st = SafeTensors::read(&path)?;
    let layout = ParamLayout::new(config)?;
    let mut moments = Vec::new();
    for s in &layout.specs {
        let t = st.tensor_f32(&s.name)?;
        if t.shape != [2, s.len] {
            return Err(Error::Shape {
                context: path.display().to_string(),
                name: s.name.clone(),
                found: t.shape,
                expected: format!("[2, {}]", s.len),
            });
        }
        moments.push(t.data);
    }
    let meta = |key: &str| {
        st.metadata().get(key).cloned().ok_or_else(|| input_error(path.display().to_string(), format!("metadata `{key}`"), "none"))
    };
    let parse = |key: &str| -> Result<f64, Error> {
        meta(key)?
            .parse::<f64>()
            .map_err(|_| input_error(path.display().to_string(), format!("a number in metadata `{key}`"), "another value"))
    };
    let losses_path = dir.join(LOSSES_FILE);
    let losses = match std::fs::read_to_string(&losses_path) {
        Ok(text) => text
            .lines()
            .map(|l| l.parse::<f64>().map_err(|_| input_error(losses_path.display().to_string(), "one loss per line", l)))
            .collect::<Result<_, _>>()?,
        Err(_) => Vec::new(),
    };
    Ok(Some(State { moments, steps: parse("steps")? as usize, epochs: parse("epochs")? as usize, seconds: parse("seconds")?, losses }))
}
