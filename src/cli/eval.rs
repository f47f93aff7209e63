//! `softmoe eval`: top-1 accuracy on the Fashion-MNIST test split, printed last as `accuracy: 0.xxxx`.

use std::path::PathBuf;
use std::time::Instant;

use softmoe::data::{self, PIXELS};
use softmoe::routing::RouteStats;
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
    // Whole routing groups per batch, so sparse models group consecutive test images exactly as the
    // trainer's evaluation does (Soft MoE and dense models give the same result for any batch).
    let group = backend.config().group_size.max(1);
    let batch = ((if cpu { 96 } else { 512 }) / group).max(1) * group;
    let sparse = backend.config().router.is_some();
    let mut stats: Vec<(usize, RouteStats)> = Vec::new();
    let (mut correct, mut start) = (0usize, 0usize);
    let t = Instant::now();
    while start < n {
        let len = batch.min(n - start);
        let images = Tensor::new(vec![len, side, side], set.test.images[start * PIXELS..(start + len) * PIXELS].to_vec())?;
        let out = if sparse {
            let (out, s) = backend.classify_routed(&images)?;
            merge(&mut stats, s);
            out
        } else {
            backend.classify(&images)?
        };
        correct += out.predictions.iter().zip(&set.test.labels[start..start + len]).filter(|(p, l)| **p == **l as usize).count();
        start += len;
        eprint!("\r{start}/{n} images, {:.1} images/s", start as f64 / t.elapsed().as_secs_f64());
    }
    eprintln!();
    println!("images: {n}");
    println!("seconds: {:.2}", t.elapsed().as_secs_f64());
    for (block, s) in &stats {
        println!(
            "block {block}: dropped tokens {:.2}%, expert load max/mean {:.3}, loads {:?}",
            100.0 * s.dropped_share(),
            s.max_over_mean_load(),
            s.load
        );
    }
    println!("accuracy: {:.4}", correct as f64 / n as f64);
    Ok(())
}

/// Adds a batch's routing statistics to the running totals, block by block.
fn merge(total: &mut Vec<(usize, RouteStats)>, batch: Vec<(usize, RouteStats)>) {
    if total.is_empty() {
        *total = batch;
        return;
    }
    for ((_, t), (_, b)) in total.iter_mut().zip(batch) {
        t.tokens += b.tokens;
        t.dropped += b.dropped;
        t.load.iter_mut().zip(b.load).for_each(|(a, v)| *a += v);
    }
}
