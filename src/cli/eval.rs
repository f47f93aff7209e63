//! `softmoe eval`: top-1 accuracy on the Fashion-MNIST test split, printed last as `accuracy: 0.xxxx`.

use std::path::PathBuf;
use std::time::Instant;

use softmoe::data::{self, PIXELS};
use softmoe::{Error, Tensor};

use super::args::Args;
use super::model::Backend;

pub fn run(mut args: Args) -> Result<(), Error> {
    let model = PathBuf::from(args.required("model")?);
    let data_dir = args.option("data")?.map(PathBuf::from);
    let cpu = args.switch("cpu");
    let f16 = args.switch("f16");
    args.finish()?;

    let backend = Backend::load(&model, cpu, f16)?;
    let dir = match data_dir {
        Some(d) => d,
        None => data::fetch(&data::default_cache())?,
    };
    let set = data::load(&dir)?;
    eprintln!("test split: {} images ({} malformed entries skipped)", set.test.len(), set.skipped);
    let side = backend.config().image_size;
    if side * side != PIXELS {
        return Err(Error::Input(format!("the model takes {side}×{side} images, Fashion-MNIST is 28×28")));
    }
    let n = set.test.len();
    let batch = if cpu { 100 } else { 500 };
    let (mut correct, mut start) = (0usize, 0usize);
    let t = Instant::now();
    while start < n {
        let len = batch.min(n - start);
        let images = Tensor::new(vec![len, side, side], set.test.images[start * PIXELS..(start + len) * PIXELS].to_vec())?;
        let out = backend.classify(&images)?;
        correct += out.predictions.iter().zip(&set.test.labels[start..start + len]).filter(|(p, l)| **p == **l as usize).count();
        start += len;
        eprint!("\r{start}/{n} images, {:.1} images/s", start as f64 / t.elapsed().as_secs_f64());
    }
    eprintln!();
    println!("images: {n}");
    println!("seconds: {:.2}", t.elapsed().as_secs_f64());
    println!("accuracy: {:.4}", correct as f64 / n as f64);
    Ok(())
}
