//! The model behind `classify` and `eval`: the GPU ViT, or the f64 reference with `--cpu`.

use std::path::Path;

use softmoe::model::{argmax, Vit, VitConfig};
use softmoe::reference::{softmax_rows, vit_forward};
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
    pub fn load(dir: &Path, cpu: bool) -> Result<Self, Error> {
        Self::new(VitWeights::load(dir)?, cpu)
    }

    pub fn new(weights: VitWeights, cpu: bool) -> Result<Self, Error> {
        if cpu {
            return Ok(Backend::Cpu(weights));
        }
        let ctx = pollster::block_on(GpuContext::new())?;
        Ok(Backend::Gpu(pollster::block_on(Vit::new(ctx, &weights))?))
    }

    pub fn config(&self) -> &VitConfig {
        match self {
            Backend::Gpu(v) => v.config(),
            Backend::Cpu(w) => &w.config,
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
