//! One classifier over the two paths a ViT runs on: the GPU (`Vit`) or the f64 reference on the CPU
//! (`--cpu` in the CLI, the browser without WebGPU). The CLI, the wasm API and the tests use it, so
//! the two paths return the same things in the same layout.

use crate::error::Result;
use crate::model::{argmax, LayerMaps, LayerRoutes, Vit, VitConfig};
use crate::reference::{softmax_rows, vit_forward};
use crate::tensor::Tensor;
use crate::weights::VitWeights;

/// The GPU model, or the weights the f64 reference runs on.
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use softmoe::model::Classifier;
/// let mut config = softmoe::VitConfig::from_json(
///     r#"{"image_size": 8, "channels": 1, "patch_size": 4, "hidden_size": 8, "num_layers": 1,
///         "num_heads": 2, "mlp_dim": 16, "num_classes": 3, "moe_layers": [0], "num_experts": 2,
///         "slots_per_expert": 1, "expert_mlp_dim": 8}"#,
///     "config.json",
/// )?;
/// config.class_names = vec!["a".into(), "b".into(), "c".into()];
/// let weights = softmoe::random::random_vit(&mut softmoe::random::Rng::new(3), &config);
/// let cpu = Classifier::Cpu(weights);
/// let out = pollster::block_on(cpu.classify(&softmoe::Tensor::new(vec![2, 8, 8], vec![0.5; 128])?, true))?;
/// assert_eq!((out.probs.len(), out.predictions.len(), out.maps.len()), (6, 2, 1));
/// assert_eq!(cpu.backend(), "cpu");
/// # Ok(())
/// # }
/// ```
pub enum Classifier {
    Gpu(Vit),
    Cpu(VitWeights),
}

/// A batch's logits and probabilities ([b, classes], row-major), predicted classes, and, when asked,
/// each Soft MoE block's dispatch and combine weights and each sparse block's routing.
#[derive(Clone, Debug)]
pub struct Classification {
    pub logits: Vec<f32>,
    pub probs: Vec<f32>,
    pub predictions: Vec<usize>,
    pub maps: Vec<LayerMaps>,
    pub routes: Vec<LayerRoutes>,
}

impl Classifier {
    pub fn config(&self) -> &VitConfig {
        match self {
            Classifier::Gpu(v) => v.config(),
            Classifier::Cpu(w) => &w.config,
        }
    }

    /// "webgpu" for the GPU path (WebGPU in a browser, Vulkan/Metal/DX12 natively), "cpu" for the f64
    /// reference.
    pub fn backend(&self) -> &'static str {
        match self {
            Classifier::Gpu(_) => "webgpu",
            Classifier::Cpu(_) => "cpu",
        }
    }

    /// Classifies `images` [b, S, S] or [b, S, S, C] in [0, 1]; with `maps`, also returns the routing
    /// of every MoE block. The f64 path rounds its logits to f32 first, so both paths take their
    /// probabilities and classes from f32 logits the same way.
    pub async fn classify(&self, images: &Tensor, maps: bool) -> Result<Classification> {
        match self {
            Classifier::Gpu(vit) => {
                let o = if maps { vit.classify_with_maps(images).await? } else { vit.classify(images).await? };
                Ok(Classification {
                    logits: o.logits.data,
                    probs: o.probs.data,
                    predictions: o.predictions,
                    maps: o.maps,
                    routes: o.routes,
                })
            }
            Classifier::Cpu(w) => {
                let c = &w.config;
                let b = images.shape[0];
                let r = vit_forward(w, images)?;
                let f32s = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
                let logits = f32s(r.logits);
                let probs = softmax_rows(&logits, c.num_classes);
                let predictions = logits.chunks(c.num_classes).map(argmax).collect();
                let (m, n, p) = (c.seq_len(), c.num_experts, c.slots_per_expert);
                let (maps, routes) = if maps {
                    let maps = r
                        .maps
                        .into_iter()
                        .map(|(block, d, cm)| LayerMaps {
                            block,
                            dispatch: Tensor { shape: vec![b, m, n, p], data: f32s(d) },
                            combine: Tensor { shape: vec![b, m, n, p], data: f32s(cm) },
                        })
                        .collect();
                    let routes = r
                        .routes
                        .into_iter()
                        .map(|(block, s)| LayerRoutes {
                            block,
                            gates: Tensor { shape: vec![b, m, n], data: f32s(s.gates) },
                            slots: s.slots.iter().map(|v| v.map(|v| v as u32)).collect(),
                        })
                        .collect();
                    (maps, routes)
                } else {
                    (Vec::new(), Vec::new())
                };
                Ok(Classification { logits, probs, predictions, maps, routes })
            }
        }
    }
}
