//! `softmoe batch-effects`: classify each image alone and inside batches of other images, and count
//! how often its output changes. Soft MoE and dense models never change (each image is its own
//! group); sparse routers do, because the tokens of a group compete for expert capacity.

use std::path::{Path, PathBuf};

use softmoe::images::read_image_tensor;
use softmoe::random::Rng;
use softmoe::{Error, Tensor};

use super::args::Args;
use super::model::Backend;

/// What changed for one model over all (image, arrangement) pairs.
#[derive(Debug, Default)]
pub struct Effects {
    pub cases: usize,
    /// Logits not bit-identical to the image classified alone.
    pub changed: usize,
    /// Predicted class different from alone.
    pub flipped: usize,
    pub max_abs_logit_diff: f32,
}

pub fn run(mut args: Args) -> Result<(), Error> {
    let model = PathBuf::from(args.required("model")?);
    let images = match args.option("images")? {
        Some(p) => PathBuf::from(p),
        None => default_samples(&model)?,
    };
    let positive = |name: &str, default: usize, args: &mut Args| -> Result<usize, Error> {
        match args.option(name)? {
            None => Ok(default),
            Some(s) => {
                s.parse().ok().filter(|&v| v > 0).ok_or_else(|| Error::Usage(format!("--{name} must be a positive integer, got `{s}`")))
            }
        }
    };
    let batch = positive("batch", 32, &mut args)?;
    let arrangements = positive("arrangements", 4, &mut args)?;
    let cpu = args.switch("cpu");
    let allow_unused = args.switch("allow-unused");
    args.finish()?;

    let backend = Backend::load(&model, cpu, false, allow_unused)?;
    let c = backend.config().clone();
    let x = read_image_tensor(&images, c.image_size)?;
    let effects = measure(&backend, &x, batch, arrangements)?;
    let n = x.shape[0];
    println!("model: {} ({})", model.display(), c.moe_type());
    if c.router.is_some() {
        println!("routing groups: {} images", c.group_size);
    }
    println!("images: {n}, each alone and in {arrangements} shuffled batches of {batch}");
    println!("max |Δlogit|: {:e}", effects.max_abs_logit_diff);
    println!("predictions changed: {}/{}", effects.flipped, effects.cases);
    println!(
        "outputs changed: {}/{} ({:.1}%)",
        effects.changed,
        effects.cases,
        100.0 * effects.changed as f64 / effects.cases.max(1) as f64
    );
    Ok(())
}

/// `samples.safetensors` beside the model directory (the shipped `weights/` layout).
fn default_samples(model: &Path) -> Result<PathBuf, Error> {
    let p = model.parent().unwrap_or(Path::new(".")).join("samples.safetensors");
    if p.is_file() {
        Ok(p)
    } else {
        Err(Error::Usage(format!("--images is required ({} does not exist)", p.display())))
    }
}

/// Each image alone, then `arrangements` random orders of all images cut into batches of `batch`.
pub fn measure(backend: &Backend, x: &Tensor, batch: usize, arrangements: usize) -> Result<Effects, Error> {
    let (n, side) = (x.shape[0], x.shape[1]);
    let per = side * side;
    let k = backend.config().num_classes;
    let pick = |idx: &[usize]| -> Result<Tensor, Error> {
        let data = idx.iter().flat_map(|&i| x.data[i * per..(i + 1) * per].iter().copied()).collect();
        Tensor::new(vec![idx.len(), side, side], data)
    };
    let mut alone = Vec::with_capacity(n);
    for i in 0..n {
        let out = backend.classify(&pick(&[i])?)?;
        alone.push((out.logits, out.predictions[0]));
    }
    let mut e = Effects::default();
    let mut rng = Rng::new(0xba7c);
    for _ in 0..arrangements {
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, rng.range(0, i));
        }
        for idx in order.chunks(batch) {
            let out = backend.classify(&pick(idx)?)?;
            for (j, &i) in idx.iter().enumerate() {
                let logits = &out.logits[j * k..(j + 1) * k];
                let diff = softmoe::compare::max_abs_diff(logits, &alone[i].0)
                    .map_err(|e| Error::Internal(format!("logits of image {i}: {e}")))?
                    .max as f32;
                e.cases += 1;
                e.changed += usize::from(logits != alone[i].0.as_slice());
                e.flipped += usize::from(out.predictions[j] != alone[i].1);
                e.max_abs_logit_diff = e.max_abs_logit_diff.max(diff);
            }
        }
    }
    Ok(e)
}
