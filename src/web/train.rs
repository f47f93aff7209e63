//! Training in the browser: `softmoe::train::Trainer` on a WebGPU device (there is no CPU trainer, so
//! without an adapter it refuses), the candle recipe's initialisation and warm-up + cosine schedule,
//! evaluation and the slot maps on the current weights, and the model exported as the config.json and
//! model.safetensors every loader reads.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;

use js_sys::{Array, Int32Array, Object, Promise, Reflect, Uint32Array, Uint8Array};
use tsify::Tsify;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use super::errors::{coded, input_err, js_err};
use super::train_types::{EvalResult, StepResult, TrainSchedule, WasmTrainOptions};
use super::{adapter_name, classify_js, describe, image_batch, now_ms};
use crate::kernels::adamw::Adamw;
use crate::model::{Classifier, Vit, VitConfig};
use crate::train::init::init_weights;
use crate::train::schedule::lr_at;
use crate::train::{TrainOptions, Trainer as GpuTrainer};
use crate::weights::{LoadOptions, SafeTensors, VitWeights};
use crate::GpuContext;

/// Images per forward when evaluating (bounds the activations' memory).
const EVAL_CHUNK: usize = 256;

struct Inner {
    /// Taken out while a call awaits it (a second call meanwhile is refused as busy).
    trainer: RefCell<Option<GpuTrainer>>,
    ctx: Arc<GpuContext>,
    config: VitConfig,
    options: WasmTrainOptions,
    warmup: usize,
    adapter: String,
    /// Steps taken, readable while a step holds the trainer.
    steps: Cell<u64>,
    /// The inference model on the weights as they are, built on demand and dropped by the next step.
    model: RefCell<Option<Rc<Classifier>>>,
}

/// A ViT being trained on the page's (or worker's) WebGPU device.
#[wasm_bindgen(js_name = Trainer)]
pub struct WebTrainer {
    inner: Rc<Inner>,
}

fn to_js<T: serde::Serialize>(v: &T) -> Result<JsValue, JsValue> {
    let s = serde_wasm_bindgen::Serializer::new().serialize_missing_as_null(true);
    v.serialize(&s).map_err(|e| coded(&format!("internal error: {e}"), "INTERNAL", &[]))
}

fn options(v: JsValue) -> Result<WasmTrainOptions, JsValue> {
    let v = if v.is_undefined() || v.is_null() { Object::new().into() } else { v };
    if let Some(obj) = v.dyn_ref::<Object>() {
        if let Some(k) = Object::keys(obj).iter().filter_map(|k| k.as_string()).find(|k| !WasmTrainOptions::KEYS.contains(&k.as_str())) {
            let expected = WasmTrainOptions::KEYS.join(", ");
            return Err(input_err(&format!("trainer options: unknown option `{k}` (known: {expected})"), &expected, None));
        }
    }
    let o: WasmTrainOptions =
        serde_wasm_bindgen::from_value(v).map_err(|e| input_err(&format!("trainer options: {e}"), "WasmTrainOptions", None))?;
    let bad = |what: &str, expected: &str, found: String| {
        input_err(&format!("trainer options: {what} must be {expected}, got {found}"), expected, None)
    };
    if !(o.lr.is_finite() && o.lr > 0.0) {
        return Err(bad("lr", "a positive number", o.lr.to_string()));
    }
    if !(o.weight_decay.is_finite() && o.weight_decay >= 0.0) {
        return Err(bad("weightDecay", "a number ≥ 0", o.weight_decay.to_string()));
    }
    if !(0.0..1.0).contains(&o.label_smoothing) {
        return Err(bad("labelSmoothing", "a number in [0, 1)", o.label_smoothing.to_string()));
    }
    if !(o.clip_norm.is_finite() && o.clip_norm >= 0.0) {
        return Err(bad("clipNorm", "a number ≥ 0 (0: no clipping)", o.clip_norm.to_string()));
    }
    match (o.total_steps, o.warmup_steps) {
        (Some(0), _) => return Err(bad("totalSteps", "a positive integer", "0".into())),
        (None, Some(w)) => return Err(bad("warmupSteps", "given with totalSteps", format!("{w} without totalSteps"))),
        (Some(t), Some(w)) if w >= t => return Err(bad("warmupSteps", &format!("less than totalSteps ({t})"), w.to_string())),
        _ => {}
    }
    Ok(o)
}

/// `labels` (an Int32Array, Uint32Array or array of integers) as class indices, one per image.
fn labels(v: &JsValue, images: usize, classes: usize) -> Result<Vec<u32>, JsValue> {
    let shape = [JsValue::from(images as u32)];
    let expected = format!("{images} labels (one per image) in 0..{classes}");
    let out: Vec<f64> = if let Some(a) = v.dyn_ref::<Int32Array>() {
        a.to_vec().into_iter().map(f64::from).collect()
    } else if let Some(a) = v.dyn_ref::<Uint32Array>() {
        a.to_vec().into_iter().map(f64::from).collect()
    } else if Array::is_array(v) {
        Array::from(v).iter().map(|x| x.as_f64().unwrap_or(f64::NAN)).collect()
    } else {
        let msg = format!("labels must be an Int32Array, Uint32Array or array of class indices, got {}", describe(v));
        return Err(input_err(&msg, &expected, Some(&shape)));
    };
    if out.len() != images {
        return Err(input_err(&format!("{} labels for {images} images", out.len()), &expected, Some(&shape)));
    }
    if let Some(i) = out.iter().position(|&l| !(l.fract() == 0.0 && l >= 0.0 && l < classes as f64)) {
        return Err(input_err(&format!("label {i} is {}, not a class index in 0..{classes}", out[i]), &expected, Some(&shape)));
    }
    Ok(out.into_iter().map(|l| l as u32).collect())
}

impl Inner {
    /// The inference model on the current weights (read back and uploaded once per step at most).
    async fn model(&self) -> Result<Rc<Classifier>, JsValue> {
        if let Some(m) = self.model.borrow().as_ref() {
            return Ok(m.clone());
        }
        let t = self.take()?;
        let w = t.weights().await;
        self.put(t);
        let w = w.map_err(js_err)?;
        let m = Rc::new(Classifier::Gpu(Vit::new(self.ctx.clone(), &w).await.map_err(js_err)?));
        *self.model.borrow_mut() = Some(m.clone());
        Ok(m)
    }

    fn take(&self) -> Result<GpuTrainer, JsValue> {
        self.trainer.borrow_mut().take().ok_or_else(busy)
    }

    fn put(&self, t: GpuTrainer) {
        *self.trainer.borrow_mut() = Some(t);
    }

    fn lr(&self, step: usize, explicit: Option<f64>) -> Result<f64, JsValue> {
        if let Some(lr) = explicit {
            if !(lr.is_finite() && lr >= 0.0) {
                return Err(input_err(&format!("lr must be a finite number ≥ 0, got {lr}"), "a number ≥ 0", None));
            }
            return Ok(lr);
        }
        match self.options.total_steps {
            Some(total) if step >= total => Err(input_err(
                &format!("the schedule's {total} steps are done (totalSteps); give this step its own lr to go on"),
                "a step's own lr",
                None,
            )),
            Some(total) => Ok(lr_at(step, total, self.warmup, self.options.lr)),
            None => Ok(self.options.lr),
        }
    }
}

fn busy() -> JsValue {
    input_err("the trainer is busy with another call (await each call before the next)", "one call at a time", None)
}

#[wasm_bindgen(js_class = Trainer)]
impl WebTrainer {
    /// A trainer for `config_json` on WebGPU: from `weights` (safetensors bytes) to fine-tune, or
    /// from the recipe's initialisation for `seed`. Rejects with WEBGPU_UNAVAILABLE without an adapter,
    /// CONFIG for what training does not differentiate (qk-norm, class token, MAP head, bfloat16
    /// dispatch, soft-moe-pytorch layers, sparse routers).
    #[wasm_bindgen(unchecked_return_type = "Promise<Trainer>")]
    pub fn create(
        config_json: String,
        weights: Option<Vec<u8>>,
        #[wasm_bindgen(unchecked_param_type = "WasmTrainOptions")] options_value: JsValue,
    ) -> Promise {
        future_to_promise(async move {
            let options = options(options_value)?;
            let config = VitConfig::from_json(&config_json, "config.json").map_err(js_err)?;
            // Refused before anything is read or a device asked for: what training cannot handle comes first.
            crate::weights::params::ParamLayout::new(&config).map_err(js_err)?;
            let w = match weights {
                Some(bytes) => {
                    let st = SafeTensors::parse(bytes, "model.safetensors").map_err(js_err)?;
                    VitWeights::from_parts_with(config.clone(), &st, LoadOptions { allow_unused: options.allow_unused }).map_err(js_err)?
                }
                None => init_weights(&config, options.seed).map_err(js_err)?,
            };
            let ctx = GpuContext::new().await.map_err(|e| {
                coded(
                    &format!("training needs WebGPU (there is no CPU trainer), and this browser gives no adapter ({e})"),
                    "WEBGPU_UNAVAILABLE",
                    &[("reason", e.to_string().into())],
                )
            })?;
            let train_options = TrainOptions {
                label_smoothing: options.label_smoothing,
                adamw: Adamw { weight_decay: options.weight_decay, ..Adamw::default() },
                max_grad_norm: options.clip_norm,
            };
            let trainer = match GpuTrainer::new(ctx.clone(), &w, train_options).await {
                Ok(t) => t,
                Err(e) => {
                    ctx.device.destroy();
                    return Err(js_err(e));
                }
            };
            let warmup = match (options.total_steps, options.warmup_steps) {
                (_, Some(w)) => w,
                (Some(t), None) => t / 48,
                (None, None) => 0,
            };
            let adapter = adapter_name(&ctx);
            let inner = Inner {
                trainer: RefCell::new(Some(trainer)),
                ctx,
                config,
                options,
                warmup,
                adapter,
                steps: Cell::new(0),
                model: RefCell::new(None),
            };
            Ok(WebTrainer { inner: Rc::new(inner) }.into())
        })
    }

    /// The adapter's name.
    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> String {
        self.inner.adapter.clone()
    }

    /// Steps taken so far.
    #[wasm_bindgen(getter)]
    pub fn steps(&self) -> u32 {
        self.inner.steps.get() as u32
    }

    /// The model's hyper-parameters.
    #[wasm_bindgen(getter)]
    pub fn config(&self) -> Result<tsify::Ts<super::ModelConfig>, JsError> {
        Ok(super::ModelConfig::from(&self.inner.config).into_ts()?)
    }

    /// The learning-rate schedule.
    #[wasm_bindgen(getter)]
    pub fn schedule(&self) -> Result<tsify::Ts<TrainSchedule>, JsError> {
        let o = &self.inner.options;
        Ok(TrainSchedule { peak_lr: o.lr, total_steps: o.total_steps.map(|t| t as u32), warmup_steps: self.inner.warmup as u32 }
            .into_ts()?)
    }

    /// One AdamW step on `pixels` (b·S·S values in [0, 1]) and their `labels`, at `lr` or the
    /// schedule's learning rate of this step.
    #[wasm_bindgen(unchecked_return_type = "Promise<StepResult>")]
    pub fn step(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Float32Array")] pixels: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Int32Array | Uint32Array | number[]")] labels_value: JsValue,
        lr: Option<f64>,
    ) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let c = &inner.config;
            let images = image_batch(c, pixels)?;
            let b = images.shape[0];
            let y = labels(&labels_value, b, c.num_classes)?;
            let mut t = inner.take()?;
            let lr = match inner.lr(t.steps() as usize, lr) {
                Ok(lr) => lr,
                Err(e) => {
                    inner.put(t);
                    return Err(e);
                }
            };
            let t0 = now_ms();
            let o = t.step(&images.data, &y, lr).await;
            let ms = now_ms() - t0;
            let steps = t.steps();
            inner.steps.set(steps);
            inner.put(t);
            let o = o.map_err(js_err)?;
            inner.model.borrow_mut().take();
            to_js(&StepResult {
                loss: o.loss,
                correct: o.correct as u32,
                batch: b as u32,
                step: steps as u32,
                lr,
                grad_norm: o.grad_norm,
                ms,
            })
        })
    }

    /// Accuracy and mean cross-entropy of the current weights on `pixels` and `labels` (inference
    /// kernels, as a loaded model runs them).
    #[wasm_bindgen(unchecked_return_type = "Promise<EvalResult>")]
    pub fn evaluate(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Float32Array")] pixels: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Int32Array | Uint32Array | number[]")] labels_value: JsValue,
    ) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let c = &inner.config;
            let images = image_batch(c, pixels)?;
            let b = images.shape[0];
            let y = labels(&labels_value, b, c.num_classes)?;
            let t0 = now_ms();
            let model = inner.model().await?;
            let (per, k) = (images.data.len() / b, c.num_classes);
            let (mut correct, mut loss) = (0usize, 0.0f64);
            for (start, chunk) in (0..b).step_by(EVAL_CHUNK).zip(images.data.chunks(EVAL_CHUNK * per)) {
                let n = chunk.len() / per;
                let t = crate::Tensor::new(vec![n, c.image_size, c.image_size, c.channels], chunk.to_vec()).map_err(js_err)?;
                let o = model.classify(&t, false).await.map_err(js_err)?;
                for (i, row) in o.logits.chunks(k).enumerate() {
                    let label = y[start + i] as usize;
                    correct += usize::from(o.predictions[i] == label);
                    // -log softmax(row)[label], shifted by the row's maximum.
                    let max = row.iter().fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64));
                    let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
                    loss += sum.ln() + max - row[label] as f64;
                }
            }
            to_js(&EvalResult { accuracy: correct as f64 / b as f64, loss: loss / b as f64, count: b as u32, ms: now_ms() - t0 })
        })
    }

    /// Classifies `pixels` with the current weights, as `Model.classify` does (maps included when asked).
    #[wasm_bindgen(unchecked_return_type = "Promise<Classification[]>")]
    pub fn classify(&self, #[wasm_bindgen(unchecked_param_type = "Float32Array")] pixels: JsValue, maps: bool) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let model = inner.model().await?;
            classify_js(&model, &inner.config, pixels, maps).await
        })
    }

    /// The model as it is: `{ configJson, weights }`, config.json's text (with a `training` record)
    /// and model.safetensors' bytes, which `loadModelFromBytes` and `softmoe classify --model` read.
    #[wasm_bindgen(unchecked_return_type = "Promise<{ configJson: string; weights: Uint8Array; steps: number }>")]
    pub fn export(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let t = inner.take()?;
            let (w, steps) = (t.weights().await, t.steps());
            inner.put(t);
            let w = w.map_err(js_err)?;
            let o = &inner.options;
            let internal = |e: serde_json::Error| coded(&format!("internal error: {e}"), "INTERNAL", &[]);
            let mut config: serde_json::Value = serde_json::from_str(&w.config.to_json()).map_err(internal)?;
            config["training"] = serde_json::json!({
                "trainer": "softmoe createTrainer (browser, WebGPU)",
                "adapter": inner.adapter,
                "steps": steps,
                "seed": o.seed,
                "lr": o.lr,
                "total_steps": o.total_steps,
                "warmup_steps": inner.warmup,
                "weight_decay": o.weight_decay,
                // The f32s' shortest decimals (0.1, not 0.10000000149011612).
                "label_smoothing": o.label_smoothing.to_string().parse::<f64>().unwrap_or(o.label_smoothing.into()),
                "clip_norm": o.clip_norm.to_string().parse::<f64>().unwrap_or(o.clip_norm.into()),
            });
            let text = serde_json::to_string_pretty(&config).map_err(internal)? + "\n";
            let out = Object::new();
            let _ = Reflect::set(&out, &"configJson".into(), &text.into());
            let _ = Reflect::set(&out, &"weights".into(), &Uint8Array::from(w.to_safetensors().as_slice()));
            let _ = Reflect::set(&out, &"steps".into(), &(steps as u32).into());
            Ok(out.into())
        })
    }

    /// Frees the GPU memory now (the device is destroyed); every later call fails.
    pub fn dispose(&self) {
        self.inner.model.borrow_mut().take();
        self.inner.ctx.device.destroy();
    }
}
