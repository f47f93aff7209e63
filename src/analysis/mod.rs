//! `softmoe analyze`'s statistics: how each Soft MoE block of a model routes a data set
//! (docs/analysis.md defines every number; docs/analysis.schema.json is the JSON's schema).
//!
//! An [`Analyzer`] takes batches of per-image dispatch and combine maps (from the GPU `Vit` or the
//! f64 reference, via `Classifier::classify(images, true)`) with their labels, and its
//! [`Analyzer::finish`] writes the report as JSON.

pub mod stats;

#[cfg(not(target_arch = "wasm32"))]
#[doc(hidden)]
pub mod canvas;
#[cfg(not(target_arch = "wasm32"))]
pub mod figures;
#[cfg(not(target_arch = "wasm32"))]
mod font;

use serde_json::{json, Value};

use crate::config::{Pooling, VitConfig};
use crate::error::{Error, Result};
use crate::model::LayerMaps;
use crate::weights::{BlockMlp, VitWeights};
use stats::{cosine, image_stats, Distribution};

/// The `schema` value of a report.
pub const SCHEMA: &str = "softmoe-analysis/1";
/// Histogram bins of every distribution.
pub const BINS: usize = 20;
/// How many classes name a slot's strongest readers, and how many pairs the similarity lists.
pub const TOP_CLASSES: usize = 3;
pub const TOP_PAIRS: usize = 5;

/// One Soft MoE block's running sums over the images seen.
struct BlockAcc {
    block: usize,
    scale: f32,
    /// Φ's columns [s][d] (after soft-moe-pytorch's slot norm scale, where it has one).
    phi: Vec<Vec<f64>>,
    /// Σ over images of D [s][m], overall and per class [k][s][m].
    dispatch: Vec<Vec<f64>>,
    class_dispatch: Vec<Vec<Vec<f64>>>,
    /// Per slot, one value per image.
    dispatch_entropy: Vec<Vec<f64>>,
    effective_tokens: Vec<Vec<f64>>,
    /// Per (image, token), image-major.
    combine_entropy: Vec<f64>,
    effective_slots: Vec<f64>,
    /// Σ over a class's images of Σᵢ Cᵢⱼ, [k][s].
    class_mass: Vec<Vec<f64>>,
}

/// Accumulates the routing statistics of every Soft MoE block of one model.
pub struct Analyzer {
    config: VitConfig,
    blocks: Vec<BlockAcc>,
    class_counts: Vec<u64>,
    images: usize,
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

fn list(v: &[f64]) -> Value {
    Value::from(v.iter().map(|&x| round6(x)).collect::<Vec<f64>>())
}

fn matrix(rows: &[Vec<f64>]) -> Value {
    Value::from(rows.iter().map(|r| list(r)).collect::<Vec<Value>>())
}

/// A histogram over the statistic's whole range [lo, hi], and one over `zoom` (the range the block's
/// values of it span, shared by its slots so that they compare), each of [`BINS`] bins.
fn distribution(values: &[f64], lo: f64, hi: f64, zoom: (f64, f64)) -> Value {
    let d = Distribution::of(values, lo, hi, BINS);
    let z = Distribution::of(values, zoom.0, zoom.1, BINS);
    json!({
        "lo": round6(d.lo), "hi": round6(d.hi), "counts": d.counts, "mean": round6(d.mean),
        "quantiles": list(&d.quantiles), "min": round6(d.min), "max": round6(d.max),
        "zoom": {"lo": round6(z.lo), "hi": round6(z.hi), "counts": z.counts},
    })
}

/// The smallest and largest of all values.
fn span<'a>(values: impl IntoIterator<Item = &'a f64>) -> (f64, f64) {
    values.into_iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| (a.min(v), b.max(v)))
}

/// Pairs (a < b) of the `TOP_PAIRS` largest entries of a symmetric matrix.
fn top_pairs(sim: &[Vec<f64>]) -> Value {
    let mut pairs: Vec<(usize, usize, f64)> =
        (0..sim.len()).flat_map(|a| (a + 1..sim.len()).map(move |b| (a, b))).map(|(a, b)| (a, b, sim[a][b])).collect();
    pairs.sort_by(|x, y| y.2.total_cmp(&x.2).then((x.0, x.1).cmp(&(y.0, y.1))));
    Value::from(pairs.iter().take(TOP_PAIRS).map(|&(a, b, c)| json!({"a": a, "b": b, "cosine": round6(c)})).collect::<Vec<_>>())
}

impl Analyzer {
    /// An analyzer for the Soft MoE blocks of `weights`; an error when it has none.
    pub fn new(weights: &VitWeights) -> Result<Self> {
        let c = &weights.config;
        let (m, s, k) = (c.seq_len(), c.num_experts * c.slots_per_expert, c.num_classes);
        let blocks: Vec<BlockAcc> = weights
            .blocks
            .iter()
            .enumerate()
            .filter_map(|(block, b)| match &b.mlp {
                BlockMlp::SoftMoe(w) => {
                    let phi = (0..s)
                        .map(|j| {
                            (0..w.d).map(|r| f64::from(w.mu[r * s + j]) * w.slot_norm_scale.get(r).map_or(1.0, |&g| f64::from(g))).collect()
                        })
                        .collect();
                    Some(BlockAcc {
                        block,
                        scale: w.scale,
                        phi,
                        dispatch: vec![vec![0.0; m]; s],
                        class_dispatch: vec![vec![vec![0.0; m]; s]; k],
                        dispatch_entropy: vec![Vec::new(); s],
                        effective_tokens: vec![Vec::new(); s],
                        combine_entropy: Vec::new(),
                        effective_slots: Vec::new(),
                        class_mass: vec![vec![0.0; s]; k],
                    })
                }
                _ => None,
            })
            .collect();
        if blocks.is_empty() {
            return Err(Error::input(
                "the model's moe_layers",
                "at least one Soft MoE block (analyze reads dispatch and combine maps)",
                c.moe_type(),
            ));
        }
        Ok(Analyzer { config: c.clone(), blocks, class_counts: vec![0; k], images: 0 })
    }

    /// Adds a batch: each Soft MoE block's maps [b, m, n, p] (as `Classifier::classify` returns them)
    /// and the images' labels (classes in 0..num_classes).
    pub fn add(&mut self, maps: &[LayerMaps], labels: &[usize]) -> Result<()> {
        let c = &self.config;
        let (m, s, k) = (c.seq_len(), c.num_experts * c.slots_per_expert, c.num_classes);
        let b = labels.len();
        if let Some(&bad) = labels.iter().find(|&&l| l >= k) {
            return Err(Error::input("a label", format!("a class in 0..{k}"), bad));
        }
        if maps.len() != self.blocks.len() {
            return Err(Error::input("the maps of a batch", format!("{} Soft MoE blocks", self.blocks.len()), maps.len()));
        }
        for (acc, lm) in self.blocks.iter_mut().zip(maps) {
            let want = vec![b, m, c.num_experts, c.slots_per_expert];
            if lm.block != acc.block || lm.dispatch.shape != want || lm.combine.shape != want {
                return Err(Error::input(
                    format!("block {}'s maps", lm.block),
                    format!("block {} with dispatch and combine {want:?}", acc.block),
                    format!("{:?} and {:?}", lm.dispatch.shape, lm.combine.shape),
                ));
            }
            for (img, &label) in labels.iter().enumerate() {
                let d = &lm.dispatch.data[img * m * s..(img + 1) * m * s];
                let cm = &lm.combine.data[img * m * s..(img + 1) * m * s];
                let st = image_stats(d, cm, m, s);
                for j in 0..s {
                    for i in 0..m {
                        let v = f64::from(d[i * s + j]);
                        acc.dispatch[j][i] += v;
                        acc.class_dispatch[label][j][i] += v;
                    }
                    acc.dispatch_entropy[j].push(st.dispatch_entropy[j]);
                    acc.effective_tokens[j].push(st.effective_tokens[j]);
                    acc.class_mass[label][j] += st.slot_combine_mass[j];
                }
                acc.combine_entropy.extend(&st.combine_entropy);
                acc.effective_slots.extend(&st.effective_slots);
            }
        }
        for &l in labels {
            self.class_counts[l] += 1;
        }
        self.images += b;
        Ok(())
    }

    /// Images added so far.
    pub fn images(&self) -> usize {
        self.images
    }

    /// The report (docs/analysis.schema.json); `model` and `backend` are recorded as given.
    pub fn finish(&self, model: &str, backend: &str) -> Result<Value> {
        if self.images == 0 {
            return Err(Error::input("the data set", "at least one image", "none"));
        }
        let c = &self.config;
        let (m, n, p, k) = (c.seq_len(), c.num_experts, c.slots_per_expert, c.num_classes);
        let s = n * p;
        let images = self.images as f64;
        let per_class = |kk: usize| self.class_counts[kk].max(1) as f64;
        let blocks: Vec<Value> = self
            .blocks
            .iter()
            .map(|a| {
                let mean_dispatch: Vec<Vec<f64>> = a.dispatch.iter().map(|r| r.iter().map(|v| v / images).collect()).collect();
                let class_dispatch: Vec<Vec<Vec<f64>>> =
                    (0..k).map(|kk| a.class_dispatch[kk].iter().map(|r| r.iter().map(|v| v / per_class(kk)).collect()).collect()).collect();
                let class_mass: Vec<Vec<f64>> = (0..k).map(|kk| a.class_mass[kk].iter().map(|v| v / per_class(kk)).collect()).collect();
                let slot_mass: Vec<f64> = (0..s).map(|j| (0..k).map(|kk| a.class_mass[kk][j]).sum::<f64>() / images).collect();
                let entropy_span = span(a.dispatch_entropy.iter().flatten());
                let tokens_span = span(a.effective_tokens.iter().flatten());
                let slots: Vec<Value> = (0..s)
                    .map(|j| {
                        let mut order: Vec<usize> = (0..k).filter(|&kk| self.class_counts[kk] > 0).collect();
                        order.sort_by(|&x, &y| class_mass[y][j].total_cmp(&class_mass[x][j]).then(x.cmp(&y)));
                        let top: Vec<Value> = order
                            .iter()
                            .take(TOP_CLASSES)
                            .map(|&kk| json!({"class": kk, "name": c.class_name(kk), "combine_mass": round6(class_mass[kk][j])}))
                            .collect();
                        json!({
                            "slot": j,
                            "expert": j / p,
                            "mean_dispatch": list(&mean_dispatch[j]),
                            "dispatch_entropy": distribution(&a.dispatch_entropy[j], 0.0, (m as f64).ln(), entropy_span),
                            "effective_tokens": distribution(&a.effective_tokens[j], 1.0, m as f64, tokens_span),
                            "combine_mass": round6(slot_mass[j]),
                            "top_classes": top,
                        })
                    })
                    .collect();
                let per_token = |v: &[f64]| -> Vec<f64> { (0..m).map(|i| v.iter().skip(i).step_by(m).sum::<f64>() / images).collect() };
                let importance = |mass: &[f64]| -> Vec<f64> { (0..n).map(|e| mass[e * p..(e + 1) * p].iter().sum()).collect() };
                let phi_sim: Vec<Vec<f64>> = (0..s).map(|x| (0..s).map(|y| cosine(&a.phi[x], &a.phi[y])).collect()).collect();
                let map_sim: Vec<Vec<f64>> =
                    (0..s).map(|x| (0..s).map(|y| cosine(&mean_dispatch[x], &mean_dispatch[y])).collect()).collect();
                // Near-uniform maps all have a cosine near 1; their deviations from 1/m tell them apart.
                let centered: Vec<Vec<f64>> = mean_dispatch.iter().map(|r| r.iter().map(|v| v - 1.0 / m as f64).collect()).collect();
                let centered_sim: Vec<Vec<f64>> = (0..s).map(|x| (0..s).map(|y| cosine(&centered[x], &centered[y])).collect()).collect();
                json!({
                    "block": a.block,
                    "scale": round6(f64::from(a.scale)),
                    "slots": slots,
                    "mean_dispatch_per_class": Value::from(class_dispatch.iter().map(|cl| matrix(cl)).collect::<Vec<_>>()),
                    "class_slot_combine_mass": matrix(&class_mass),
                    "tokens": {
                        "combine_entropy_mean": list(&per_token(&a.combine_entropy)),
                        "effective_slots_mean": list(&per_token(&a.effective_slots)),
                        "combine_entropy": distribution(&a.combine_entropy, 0.0, (s as f64).ln(), span(&a.combine_entropy)),
                        "effective_slots": distribution(&a.effective_slots, 1.0, s as f64, span(&a.effective_slots)),
                    },
                    "expert_importance": {
                        "overall": list(&importance(&slot_mass)),
                        "per_class": matrix(&class_mass.iter().map(|r| importance(r)).collect::<Vec<_>>()),
                    },
                    "similarity": {
                        "phi": matrix(&phi_sim),
                        "dispatch": matrix(&map_sim),
                        "top_phi_pairs": top_pairs(&phi_sim),
                        "top_dispatch_pairs": top_pairs(&map_sim),
                        "dispatch_centered": matrix(&centered_sim),
                        "top_dispatch_centered_pairs": top_pairs(&centered_sim),
                    },
                })
            })
            .collect();
        Ok(json!({
            "schema": SCHEMA,
            "model": model,
            "backend": backend,
            "images": self.images,
            "classes": (0..k).map(|kk| c.class_name(kk)).collect::<Vec<_>>(),
            "class_counts": self.class_counts,
            "tokens": m,
            "grid": c.grid(),
            "class_token": c.classifier == Pooling::Token,
            "experts": n,
            "slots_per_expert": p,
            "bins": BINS,
            "blocks": blocks,
        }))
    }
}
