//! The model behind `classify`, `eval` and `batch-effects`: `softmoe::Classifier`, the GPU ViT or
//! the f64 reference with `--cpu`, loaded as the command line asks.

use std::path::Path;

use softmoe::model::{Classification, Classifier, Vit, VitConfig};
use softmoe::routing::RouteStats;
use softmoe::weights::{LoadOptions, VitWeights};
use softmoe::{Error, GpuContext, Tensor};

/// Logits, probabilities and predicted classes of a batch (and its routing, when asked for).
pub type Classified = Classification;

pub struct Backend(pub Classifier);

impl Backend {
    /// Loads the model in `dir`; `allow_unused` is `--allow-unused` (tensors the config does not
    /// use are ignored instead of refused).
    pub fn load(dir: &Path, cpu: bool, f16: bool, allow_unused: bool) -> Result<Self, Error> {
        Self::new(VitWeights::load_with(dir, LoadOptions { allow_unused })?, cpu, f16)
    }

    /// The f64 reference with `cpu`, else the GPU model (f16 expert weights with `f16`).
    pub fn new(weights: VitWeights, cpu: bool, f16: bool) -> Result<Self, Error> {
        if cpu && f16 {
            return Err(Error::Usage("--f16 applies to the GPU path, not --cpu".into()));
        }
        if cpu {
            return Ok(Backend(Classifier::Cpu(weights)));
        }
        let ctx = pollster::block_on(GpuContext::new())?;
        let options = softmoe::layers::LayerOptions { f16_weights: f16 };
        Ok(Backend(Classifier::Gpu(pollster::block_on(Vit::with_options(ctx, &weights, options))?)))
    }

    pub fn config(&self) -> &VitConfig {
        self.0.config()
    }

    /// As `classify`, also returning each sparse MoE block's routing statistics.
    pub fn classify_routed(&self, images: &Tensor) -> Result<(Classified, Vec<(usize, RouteStats)>), Error> {
        let n = self.config().num_experts;
        let o = pollster::block_on(self.0.classify(images, true))?;
        let stats = o
            .routes
            .iter()
            .map(|r| (r.block, RouteStats::of(&r.slots.iter().map(|s| s.map(|v| v as usize)).collect::<Vec<_>>(), n)))
            .collect();
        Ok((o, stats))
    }

    pub fn classify(&self, images: &Tensor) -> Result<Classified, Error> {
        pollster::block_on(self.0.classify(images, false))
    }
}
