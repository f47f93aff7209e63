//! One training step of the candle trainer: the data-parallel forward and backward, the loss, the
//! AdamW optimisers and the learning-rate schedule.

use std::collections::BTreeMap;

use candle_core::{Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};

use crate::model::{self, Config, DropPath, Weights};

type Res<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// The loss's parts: label smoothing ε and the weight of the sparse routers' load-balancing loss.
#[derive(Clone, Copy, Debug)]
pub struct LossWeights {
    pub label_smoothing: f64,
    pub aux_weight: f64,
}

/// Linear warm-up from 0 to `lr`, then cosine decay to 0.
pub fn lr_at(step: usize, total: usize, warmup: usize, lr: f64) -> f64 {
    if step < warmup {
        lr * (step + 1) as f64 / warmup as f64
    } else {
        let t = (step - warmup) as f64 / (total - warmup).max(1) as f64;
        lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

/// The two AdamW optimisers: weight decay on kernels only (not biases, LayerNorm, position
/// embedding, router).
pub fn optimizers(vars: &BTreeMap<String, Var>, lr: f64, weight_decay: f64) -> candle_core::Result<(AdamW, AdamW)> {
    let (decay, no_decay): (Vec<_>, Vec<_>) = vars.iter().partition(|(k, _)| k.ends_with("/kernel") && !k.contains("Router"));
    let mk = |vs: Vec<(&String, &Var)>, wd: f64| {
        AdamW::new(
            vs.into_iter().map(|(_, v)| v.clone()).collect(),
            ParamsAdamW { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: wd },
        )
    };
    Ok((mk(decay, weight_decay)?, mk(no_decay, 0.0)?))
}

/// Number of data-parallel workers (each runs candle single-threaded; see `main`).
pub fn workers() -> usize {
    WORKERS.load(std::sync::atomic::Ordering::Relaxed)
}

pub static WORKERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(2);

/// One training step's forward and backward, data-parallel: the batch is cut into `workers()`
/// contiguous shards, each shard's mean loss is back-propagated on its own thread, and the
/// gradients are averaged weighted by shard size in a fixed order (deterministic whatever the
/// scheduling). Returns (gradients, mean loss, predictions).
pub fn parallel_step(
    w: &Weights,
    cfg: &Config,
    (px, ys): (&[f32], &[u32]),
    (keep, drop): (&[f32], bool),
    vars: &BTreeMap<String, Var>,
    loss_weights: LossWeights,
    dev: &Device,
) -> Res<(candle_core::backprop::GradStore, f64, Vec<u32>)> {
    let bs = ys.len();
    let shard = bs.div_ceil(workers());
    type Out = candle_core::Result<(candle_core::backprop::GradStore, f32, Vec<u32>)>;
    let results: Vec<(usize, Out)> = std::thread::scope(|s| {
        let handles: Vec<_> = ys
            .chunks(shard)
            .enumerate()
            .map(|(k, yk)| {
                let xk = &px[k * shard * 784..(k * shard + yk.len()) * 784];
                s.spawn(move || {
                    let run = || -> Out {
                        let x = Tensor::from_slice(xk, (yk.len(), 28, 28), dev)?;
                        let y = Tensor::from_slice(yk, yk.len(), dev)?;
                        let dp = DropPath { keep, batch: bs, offset: k * shard };
                        let (logits, aux) = model::forward_with_aux(&x, w, cfg, drop.then_some(&dp))?;
                        let loss = smoothed_cross_entropy(&logits, &y, loss_weights.label_smoothing)?;
                        let grads = (&loss + (aux * loss_weights.aux_weight)?)?.backward()?;
                        let pred = logits.argmax(1)?.to_vec1::<u32>()?;
                        Ok((grads, loss.to_scalar::<f32>()?, pred))
                    };
                    (yk.len(), run())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("worker panicked")).collect()
    });
    let mut total: Option<candle_core::backprop::GradStore> = None;
    let mut loss = 0f64;
    let mut preds = Vec::with_capacity(bs);
    for (n, res) in results {
        let (g, l, p) = res?;
        let f = n as f64 / bs as f64;
        loss += l as f64 * f;
        preds.extend(p);
        match total.as_mut() {
            None => {
                let mut g = g;
                for v in vars.values() {
                    if let Some(t) = g.remove(v.as_tensor()) {
                        g.insert(v.as_tensor(), (t * f)?);
                    }
                }
                total = Some(g);
            }
            Some(acc) => {
                for v in vars.values() {
                    if let Some(t) = g.get(v.as_tensor()) {
                        let sum = match acc.remove(v.as_tensor()) {
                            Some(a) => (a + (t * f)?)?,
                            None => (t * f)?,
                        };
                        acc.insert(v.as_tensor(), sum);
                    }
                }
            }
        }
    }
    Ok((total.expect("at least one shard"), loss, preds))
}

/// Mean cross-entropy against targets that put 1 − ε on the label and ε/K on each of the K classes.
pub fn smoothed_cross_entropy(logits: &Tensor, y: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    let log_p = candle_nn::ops::log_softmax(logits, candle_core::D::Minus1)?;
    let nll = candle_nn::loss::nll(&log_p, y)?;
    if eps == 0.0 {
        return Ok(nll);
    }
    let uniform = log_p.mean_all()?.neg()?;
    (nll * (1.0 - eps))? + (uniform * eps)?
}
