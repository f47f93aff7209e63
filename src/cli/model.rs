//! The model behind `classify` and `eval`: the GPU ViT, or the f64 reference with `--cpu`.

use std::path::Path;

use softmoe::model::{argmax, Vit, VitConfig};
use softmoe::reference::{softmax_rows, vit_forward};
use softmoe::routing::RouteStats;
use softmoe::weights::VitWeights;
use softmoe::{Error, GpuContext, Tensor};

/// Logits, probabilities and predicted classes of a batch.
pub struct Classified {
    pub logits: Vec<f32>,
    pub probs: Vec<f32>,
    pub predictions: Vec<usize>,
}

pub enum Backend {
    Gpu(Vit),
    Cpu(VitWeights),
}

impl Backend {
    pub fn load(dir: &Path, cpu: bool, f16: bool) -> Result<Self, Error> {
        Self::new(VitWeights::load(dir)?, cpu, f16)
    }

    /// The f64 reference with `cpu`, else the GPU model (f16 expert weights with `f16`).
    pub fn new(weights: VitWeights, cpu: bool, f16: bool) -> Result<Self, Error> {
        if cpu && f16 {
            return Err(Error::Usage("--f16 applies to the GPU path, not --cpu".into()));
        }
        if cpu {
            return Ok(Backend::Cpu(weights));
        }
        let ctx = pollster::block_on(GpuContext::new())?;
        let options = softmoe::layers::LayerOptions { f16_weights: f16 };
        Ok(Backend::Gpu(pollster::block_on(Vit::with_options(ctx, &weights, options))?))
    }

    pub fn config(&self) -> &VitConfig {
        match self {
            Backend::Gpu(v) => v.config(),
            Backend::Cpu(w) => &w.config,
        }
    }

    /// As `classify`, also returning each sparse MoE block's routing statistics.
    pub fn classify_routed(&self, images: &Tensor) -> Result<(Classified, Vec<(usize, RouteStats)>), Error> {
        let n = self.config().num_experts;
        match self {
            Backend::Gpu(v) => {
                let o = pollster::block_on(v.classify_with_maps(images))?;
                let stats = o
                    .routes
                    .iter()
                    .map(|r| (r.block, RouteStats::of(&r.slots.iter().map(|s| s.map(|v| v as usize)).collect::<Vec<_>>(), n)))
                    .collect();
                Ok((Classified { logits: o.logits.data, probs: o.probs.data, predictions: o.predictions }, stats))
            }
            Backend::Cpu(w) => {
                let k = w.config.num_classes;
                let r = vit_forward(w, images)?;
                let stats = r.routes.iter().map(|(block, s)| (*block, RouteStats::of(&s.slots, n))).collect();
                let logits: Vec<f32> = r.logits.into_iter().map(|v| v as f32).collect();
                let probs = softmax_rows(&logits, k);
                let predictions = logits.chunks(k).map(argmax).collect();
                Ok((Classified { logits, probs, predictions }, stats))
            }
        }
    }

    pub fn classify(&self, images: &Tensor) -> Result<Classified, Error> {
        match self {
            Backend::Gpu(v) => {
                let o = pollster::block_on(v.classify(images))?;
                Ok(Classified { logits: o.logits.data, probs: o.probs.data, predictions: o.predictions })
            }
            Backend::Cpu(w) => {
                let k = w.config.num_classes;
                let logits: Vec<f32> = vit_forward(w, images)?.logits.into_iter().map(|v| v as f32).collect();
                let probs = softmax_rows(&logits, k);
                let predictions = logits.chunks(k).map(argmax).collect();
                Ok(Classified { logits, probs, predictions })
            }
        }
    }
}
