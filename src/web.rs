//! The browser API (wasm32): load a model, classify images, read the Soft MoE maps; and the bare
//! `SoftMoe` layer. WebGPU when the browser has a hardware adapter, else the CPU path compiled into
//! the wasm — the objects say which backend runs and why. Every failure rejects the promise with a
//! JS `Error` carrying a `code` and the failure's fields (`errors`); every value taken or returned
//! has a TypeScript type generated from its Rust definition (`types`).

mod errors;
mod train;
mod train_types;
mod types;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use js_sys::{Array, Float32Array, Function, Int32Array, Promise, Reflect};
use serde::Serialize;
use tsify::{Ts, Tsify};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::layers::{LayerOptions, SoftMoe};
use crate::model::{Classifier, Vit, VitConfig};
use crate::reference::soft_moe_forward;
use crate::weights::{LoadOptions, SafeTensors, SoftMoeWeights, VitWeights};
use crate::{GpuContext, Tensor};
use errors::{coded, input_err, js_err};
pub use train::WebTrainer;
pub use train_types::{EvalResult, StepResult, TrainSchedule, WasmTrainOptions};
pub use types::{
    ActiveBackend, Backend, ClassTokenMaps, Classification, LayerResult, ModelConfig, Precision, RoutedLayer, WasmLoadOptions,
};

fn f32s(v: &[f32]) -> Float32Array {
    Float32Array::from(v)
}

/// `performance.now()` of the global scope (window or worker), in milliseconds.
fn now_ms() -> f64 {
    let perf = Reflect::get(&js_sys::global(), &"performance".into()).unwrap_or(JsValue::UNDEFINED);
    Reflect::get(&perf, &"now".into())
        .ok()
        .and_then(|f| f.dyn_into::<Function>().ok())
        .and_then(|f| f.call0(&perf).ok())
        .and_then(|v| v.as_f64())
        .unwrap_or_else(js_sys::Date::now)
}

/// What a JS value is, for messages: `null`, `a string`, `Int32Array`, ...
fn describe(v: &JsValue) -> String {
    if v.is_null() {
        return "null".into();
    }
    if v.is_undefined() {
        return "undefined".into();
    }
    if let Some(ty) = v.js_typeof().as_string().filter(|t| t != "object" && t != "function") {
        return format!("a {ty}");
    }
    Reflect::get(v, &"constructor".into())
        .ok()
        .and_then(|c| Reflect::get(&c, &"name".into()).ok())
        .and_then(|n| n.as_string())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "an object".into())
}

/// `v` as a Float32Array, or an input error naming what `what` must be, its shape, and what came
/// instead. (wasm-bindgen does not check the class of an argument: an Int32Array or a plain array
/// would be converted silently.)
fn float32_array(v: JsValue, what: &str, shape: &[JsValue]) -> Result<Float32Array, JsValue> {
    if v.is_instance_of::<Float32Array>() {
        Ok(v.unchecked_into())
    } else {
        Err(input_err(&format!("{what} must be a Float32Array, got {}", describe(&v)), "a Float32Array", Some(shape)))
    }
}

/// The load options, checked (undefined is the defaults): a key that is not a field is refused too.
fn load_options(v: JsValue) -> Result<WasmLoadOptions, JsValue> {
    if v.is_undefined() || v.is_null() {
        return Ok(WasmLoadOptions::default());
    }
    if let Some(obj) = v.dyn_ref::<js_sys::Object>() {
        if let Some(k) =
            js_sys::Object::keys(obj).iter().filter_map(|k| k.as_string()).find(|k| !WasmLoadOptions::KEYS.contains(&k.as_str()))
        {
            let expected = WasmLoadOptions::KEYS.join(", ");
            return Err(input_err(&format!("load options: unknown option `{k}` (known: {expected})"), &expected, None));
        }
    }
    serde_wasm_bindgen::from_value(v).map_err(|e| input_err(&format!("load options: {e}"), "WasmLoadOptions", None))
}

fn stage(options: &WasmLoadOptions, name: &str) {
    if let Some(f) = &options.on_stage {
        // A callback that throws must not fail the load.
        let _ = f.call1(&JsValue::NULL, &name.into());
    }
}

/// A WebGPU device, or why there is none (an error only when WebGPU was required).
async fn device(want: Backend) -> Result<Result<Arc<GpuContext>, String>, JsValue> {
    if want == Backend::Cpu {
        return Ok(Err("the CPU backend was requested".into()));
    }
    match GpuContext::new().await {
        Ok(ctx) if want == Backend::Auto && ctx.info.device_type == wgpu::DeviceType::Cpu => {
            // Dropping a device does not free it in the browser; destroying does.
            ctx.device.destroy();
            Ok(Err("the WebGPU adapter is a software fallback adapter (isFallbackAdapter, e.g. SwiftShader), which runs \
                    slower than the CPU path in wasm; backend 'webgpu' uses it anyway"
                .into()))
        }
        Ok(ctx) => Ok(Ok(ctx)),
        Err(e) if want == Backend::Webgpu => Err(coded(
            &format!("backend `webgpu` was requested, but this browser gives no WebGPU adapter ({e})"),
            "WEBGPU_UNAVAILABLE",
            &[("reason", e.to_string().into())],
        )),
        Err(e) => Ok(Err(e.to_string())),
    }
}

thread_local! {
    /// The device-lost callbacks of live models, by id (wgpu's lost callback must be `Send`, so it
    /// carries the id and finds the JS function here; wasm has one thread).
    static LOST_CALLBACKS: RefCell<HashMap<u64, Function>> = RefCell::new(HashMap::new());
    static NEXT_ID: Cell<u64> = const { Cell::new(0) };
}

/// Calls `callback` with the reason when `ctx`'s device is lost, until [`forget_lost`] of the id.
fn on_lost(ctx: &GpuContext, callback: Option<Function>) -> Option<u64> {
    let callback = callback?;
    let id = NEXT_ID.with(|n| {
        n.set(n.get() + 1);
        n.get()
    });
    LOST_CALLBACKS.with(|m| m.borrow_mut().insert(id, callback));
    ctx.device.set_device_lost_callback(move |reason, message| {
        if let Some(f) = LOST_CALLBACKS.with(|m| m.borrow_mut().remove(&id)) {
            let _ = f.call1(&JsValue::NULL, &format!("{reason:?}: {message}").into());
        }
    });
    Some(id)
}

fn forget_lost(id: Option<u64>) {
    if let Some(id) = id {
        LOST_CALLBACKS.with(|m| m.borrow_mut().remove(&id));
    }
}

/// A readable adapter name; browsers may hide the name, then the description or vendor stands in.
fn adapter_name(ctx: &GpuContext) -> String {
    let i = &ctx.info;
    let name = [&i.name, &i.driver, &i.driver_info].into_iter().find(|s| !s.is_empty()).cloned();
    match name {
        Some(n) => format!("{n} (WebGPU)"),
        None if i.vendor != 0 => format!("WebGPU adapter, vendor {:#06x}", i.vendor),
        None => "WebGPU adapter (name hidden by the browser)".into(),
    }
}

fn active(c: &Classifier) -> ActiveBackend {
    match c {
        Classifier::Gpu(_) => ActiveBackend::Webgpu,
        Classifier::Cpu(_) => ActiveBackend::Cpu,
    }
}

struct ModelInner {
    backend: Classifier,
    ctx: Option<Arc<GpuContext>>,
    config: VitConfig,
    adapter: String,
    fallback_reason: Option<String>,
    /// The expert weights' storage on the GPU (`f32`, `f16`), or `f64` on the CPU path.
    precision: &'static str,
    lost_id: Cell<Option<u64>>,
}

/// Whether the Soft MoE experts of `config` go to the GPU as f16 for `want`, or why they cannot
/// when f16 was asked for by name.
fn f16_experts(want: Precision, config: &VitConfig, ctx: Option<&GpuContext>) -> Result<bool, JsValue> {
    let why_not = if config.moe_layers.is_empty() || config.router.is_some() {
        Some("the model has no Soft MoE block (f16 applies to the Soft MoE experts' weights)".to_string())
    } else if let Some((key, v)) =
        [("hidden_size", config.hidden_size), ("expert_mlp_dim", config.expert_mlp_dim)].into_iter().find(|(_, v)| !v.is_multiple_of(4))
    {
        Some(format!("{key} is {v}, not a multiple of 4"))
    } else {
        match ctx {
            None => Some("the model runs on the CPU path (f64)".into()),
            Some(c) if !c.features.contains(wgpu::Features::SHADER_F16) => Some(format!("the adapter {} has no shader-f16", c.info.name)),
            Some(_) => None,
        }
    };
    match (want, why_not) {
        (Precision::F32, _) => Ok(false),
        (Precision::Auto, reason) => Ok(reason.is_none()),
        (Precision::F16, None) => Ok(true),
        (Precision::F16, Some(reason)) => Err(coded(
            &format!("precision `f16` was requested, but {reason}; `auto` uses f16 only where it works"),
            "CONFIG",
            &[
                ("file", "the load options".into()),
                ("key", "precision".into()),
                ("expected", "f32 or auto".into()),
                ("found", "f16".into()),
            ],
        )),
    }
}

/// A Soft MoE ViT loaded in the browser.
#[wasm_bindgen]
pub struct Model {
    inner: Rc<ModelInner>,
}

#[wasm_bindgen]
impl Model {
    /// Loads a model from its `config.json` text and `model.safetensors` bytes; resolves to a Model.
    #[wasm_bindgen(unchecked_return_type = "Promise<Model>")]
    pub fn load(
        config_json: String,
        weights: Vec<u8>,
        #[wasm_bindgen(unchecked_param_type = "WasmLoadOptions")] options: JsValue,
    ) -> Promise {
        future_to_promise(async move {
            let options = load_options(options)?;
            let config_name = options.config_name.as_deref().unwrap_or("config.json");
            let weights_name = options.weights_name.as_deref().unwrap_or("model.safetensors");
            let config = VitConfig::from_json(&config_json, config_name).map_err(js_err)?;
            let st = SafeTensors::parse(weights, weights_name).map_err(js_err)?;
            // The native loader's code path; a tensor the config does not use is refused unless allowed.
            let w = VitWeights::from_parts_with(config.clone(), &st, LoadOptions { allow_unused: options.allow_unused }).map_err(js_err)?;
            drop(st);
            stage(&options, "device");
            let inner = match device(options.backend).await? {
                Ok(ctx) => {
                    stage(&options, "upload");
                    let adapter = adapter_name(&ctx);
                    let f16 = match f16_experts(options.precision, &config, Some(&ctx)) {
                        Ok(f16) => f16,
                        Err(e) => {
                            ctx.device.destroy();
                            return Err(e);
                        }
                    };
                    let vit = Vit::with_options(ctx.clone(), &w, LayerOptions { f16_weights: f16 }).await.map_err(js_err)?;
                    let lost_id = Cell::new(on_lost(&ctx, options.on_device_lost.clone()));
                    let precision = if f16 { "f16" } else { "f32" };
                    ModelInner { backend: Classifier::Gpu(vit), ctx: Some(ctx), config, adapter, fallback_reason: None, precision, lost_id }
                }
                Err(reason) => {
                    f16_experts(options.precision, &config, None)?;
                    ModelInner {
                        backend: Classifier::Cpu(w),
                        ctx: None,
                        config,
                        adapter: "CPU (f64 reference in wasm)".into(),
                        fallback_reason: Some(reason),
                        precision: "f64",
                        lost_id: Cell::new(None),
                    }
                }
            };
            Ok(Model { inner: Rc::new(inner) }.into())
        })
    }

    /// Where the model runs.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> Result<Ts<ActiveBackend>, JsError> {
        Ok(active(&self.inner.backend).into_ts()?)
    }

    /// The adapter's name and backend, or the CPU path.
    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> String {
        self.inner.adapter.clone()
    }

    /// How the Soft MoE experts' weights are stored: `f32` or `f16` on WebGPU (arithmetic is f32
    /// either way), `f64` on the CPU path.
    #[wasm_bindgen(getter, unchecked_return_type = "'f32' | 'f16' | 'f64'")]
    pub fn precision(&self) -> String {
        self.inner.precision.into()
    }

    /// Why the CPU path runs (no `navigator.gpu`, no adapter, a software adapter, or asked for), if it does.
    #[wasm_bindgen(getter, js_name = fallbackReason)]
    pub fn fallback_reason(&self) -> Option<String> {
        self.inner.fallback_reason.clone()
    }

    /// Why the model's GPU device was lost, once it is (then every call fails until a new load).
    #[wasm_bindgen(getter, js_name = deviceLost)]
    pub fn device_lost(&self) -> Option<String> {
        self.inner.ctx.as_ref().and_then(|c| c.check_alive().err()).map(|e| e.to_string())
    }

    /// The model's hyper-parameters.
    #[wasm_bindgen(getter)]
    pub fn config(&self) -> Result<Ts<ModelConfig>, JsError> {
        Ok(ModelConfig::from(&self.inner.config).into_ts()?)
    }

    /// Frees the GPU memory now (the device is destroyed; the device-lost callback is not called).
    /// The wasm object itself is freed by `free()`.
    pub fn dispose(&self) {
        forget_lost(self.inner.lost_id.take());
        if let Some(ctx) = &self.inner.ctx {
            ctx.device.destroy();
        }
    }

    /// Classifies `pixels` (b·S·S grayscale values in [0, 1]); resolves to one result per image,
    /// whose `layers` hold, when `maps` is true, each MoE block's routing.
    #[wasm_bindgen(unchecked_return_type = "Promise<Classification[]>")]
    pub fn classify(&self, #[wasm_bindgen(unchecked_param_type = "Float32Array")] pixels: JsValue, maps: bool) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move { classify_js(&inner.backend, &inner.config, pixels, maps).await })
    }

    /// Converts an `ImageData` (any size, RGBA) to the model's S×S grayscale input in [0, 1]: composited
    /// over black (transparent pixels are black), Rec. 709 luma and a triangle-filter resize — what
    /// `softmoe classify --images FILE.png` does to an opaque PNG, with the same `image` crate calls.
    #[wasm_bindgen(js_name = pixelsFromImageData)]
    pub fn pixels_from_image_data(&self, image: &web_sys::ImageData) -> Result<Float32Array, JsValue> {
        let (w, h) = (image.width(), image.height());
        let rgba = image.data().0;
        if w == 0 || h == 0 || rgba.len() != (w as usize) * (h as usize) * 4 {
            let msg = format!("ImageData is empty or malformed: {w}×{h} with {} bytes", rgba.len());
            return Err(input_err(&msg, "a non-empty ImageData", None));
        }
        let rgb: Vec<u8> = rgba
            .chunks_exact(4)
            .flat_map(|p| {
                let over_black = |c: u8| ((c as u32 * p[3] as u32 + 127) / 255) as u8;
                [over_black(p[0]), over_black(p[1]), over_black(p[2])]
            })
            .collect();
        let rgb =
            image::RgbImage::from_raw(w, h, rgb).ok_or_else(|| input_err("ImageData size mismatch", "a well-formed ImageData", None))?;
        let gray = image::DynamicImage::ImageRgb8(rgb).to_luma8();
        let s = self.inner.config.image_size as u32;
        let small = image::imageops::resize(&gray, s, s, image::imageops::FilterType::Triangle);
        Ok(small.pixels().map(|p| p.0[0] as f32 / 255.0).collect::<Vec<f32>>().as_slice().into())
    }
}

/// `pixels` checked against the model's input (a Float32Array of b·S·S·C values in [0, 1], b ≥ 1)
/// as an images tensor [b, S, S, C]; else an input error naming the expected shape.
fn image_batch(c: &VitConfig, pixels: JsValue) -> Result<Tensor, JsValue> {
    let s = c.image_size;
    let per = s * s * c.channels;
    let shape: Vec<JsValue> = if c.channels == 1 {
        vec!["b".into(), (s as u32).into(), (s as u32).into()]
    } else {
        vec!["b".into(), (s as u32).into(), (s as u32).into(), (c.channels as u32).into()]
    };
    let pixels = float32_array(pixels, &format!("pixels (b·{per} grayscale values in [0, 1])"), &shape)?;
    let data = pixels.to_vec();
    if per == 0 || data.is_empty() || !data.len().is_multiple_of(per) {
        let msg = format!("pixels hold {} values, not a multiple of {per} (one {s}×{s} image)", data.len());
        return Err(input_err(&msg, &format!("b·{per} values"), Some(&shape)));
    }
    if let Some(i) = data.iter().position(|v| !v.is_finite() || !(0.0..=1.0).contains(v)) {
        return Err(input_err(&format!("pixel {i} is {}, outside [0, 1]", data[i]), "values in [0, 1]", Some(&shape)));
    }
    let b = data.len() / per;
    Tensor::new(vec![b, s, s, c.channels], data).map_err(js_err)
}

/// `pixels` (b·S·S values in [0, 1]) classified on `backend`, as the JS array of `Classification`s
/// (with each MoE block's routing when `maps`): what `Model.classify` and `Trainer.classify` return.
async fn classify_js(backend: &Classifier, c: &VitConfig, pixels: JsValue, maps: bool) -> Result<JsValue, JsValue> {
    let images = image_batch(c, pixels)?;
    let b = images.shape[0];
    let k = c.num_classes;
    let t0 = now_ms();
    // Both paths through one classifier: the same layout of logits, maps and routes.
    let o = backend.classify(&images, maps).await.map_err(js_err)?;
    let ms = now_ms() - t0;
    let backend = active(backend);
    let slot = |s: &Option<u32>| s.map_or(-1, |v| v as i32);
    let routes: Vec<(usize, Vec<f32>, Vec<i32>)> =
        o.routes.into_iter().map(|r| (r.block, r.gates.data, r.slots.iter().map(slot).collect())).collect();
    let soft: Vec<(usize, Vec<f32>, Vec<f32>)> = o.maps.into_iter().map(|m| (m.block, m.dispatch.data, m.combine.data)).collect();
    // Per image: its seq_len tokens' rows; with a class token (row 0) a layer's `dispatch` and
    // `combine` are the grid's patch rows, and the class token's row comes apart.
    let (sl, n) = (c.num_experts * c.slots_per_expert, c.num_experts);
    let (per_map, per_route) = (c.seq_len() * sl, c.seq_len() * n);
    let first = c.seq_len() - c.tokens();
    let (grid, experts) = (c.grid() as u32, c.num_experts as u32);
    let sparse_kind = c.moe_type();
    let out = (0..b)
        .map(|i| {
            let label = o.predictions[i];
            let soft_layers = soft.iter().map(|(blk, d, cm)| {
                let (start, patches) = (i * per_map, i * per_map + first * sl);
                RoutedLayer::Soft {
                    block: *blk as u32,
                    grid,
                    experts,
                    slots_per_expert: c.slots_per_expert as u32,
                    dispatch: f32s(&d[patches..(i + 1) * per_map]),
                    combine: f32s(&cm[patches..(i + 1) * per_map]),
                    class_token: (first > 0)
                        .then(|| ClassTokenMaps { dispatch: f32s(&d[start..patches]), combine: f32s(&cm[start..patches]) }),
                }
            });
            let sparse_layers = routes.iter().map(|(blk, g, slots)| {
                let range = i * per_route + first * n..(i + 1) * per_route;
                let (gates, slots) = (f32s(&g[range.clone()]), Int32Array::from(&slots[range]));
                if sparse_kind == "experts_choice" {
                    RoutedLayer::ExpertsChoice { block: *blk as u32, grid, experts, gates, slots }
                } else {
                    RoutedLayer::TokensChoice { block: *blk as u32, grid, experts, gates, slots }
                }
            });
            Classification {
                label: label as u32,
                class_name: c.class_name(label),
                probs: f32s(&o.probs[i * k..(i + 1) * k]),
                logits: f32s(&o.logits[i * k..(i + 1) * k]),
                layers: soft_layers.chain(sparse_layers).collect(),
                ms,
                backend,
            }
        })
        .collect::<Vec<_>>();
    // None as null (a `classToken` without a class token), not undefined.
    let serializer = serde_wasm_bindgen::Serializer::new().serialize_missing_as_null(true);
    out.serialize(&serializer).map_err(|e| coded(&format!("internal error: {e}"), "INTERNAL", &[]))
}

enum LayerBackend {
    Gpu(SoftMoe),
    Cpu,
}

struct LayerInner {
    backend: LayerBackend,
    ctx: Option<Arc<GpuContext>>,
    fallback_reason: Option<String>,
    weights: SoftMoeWeights,
}

/// A bare Soft MoE layer, for models of your own.
#[wasm_bindgen(js_name = SoftMoeLayer)]
pub struct Layer {
    inner: Rc<LayerInner>,
}

#[wasm_bindgen(js_class = SoftMoeLayer)]
impl Layer {
    /// Loads a layer from safetensors bytes (SPEC names, optional `gelu`/`normalize` metadata).
    #[wasm_bindgen(unchecked_return_type = "Promise<SoftMoeLayer>")]
    pub fn load(weights: Vec<u8>, #[wasm_bindgen(unchecked_param_type = "WasmLoadOptions")] options: JsValue) -> Promise {
        future_to_promise(async move {
            let options = load_options(options)?;
            let st = SafeTensors::parse(weights, options.weights_name.as_deref().unwrap_or("layer.safetensors")).map_err(js_err)?;
            // As `softmoe layer` loads it.
            let w = SoftMoeWeights::from_layer_file(&st, LoadOptions { allow_unused: options.allow_unused }).map_err(js_err)?;
            stage(&options, "device");
            let (backend, ctx, fallback_reason) = match device(options.backend).await? {
                Ok(ctx) => {
                    stage(&options, "upload");
                    (LayerBackend::Gpu(SoftMoe::new(ctx.clone(), &w).await.map_err(js_err)?), Some(ctx), None)
                }
                Err(reason) => (LayerBackend::Cpu, None, Some(reason)),
            };
            Ok(Layer { inner: Rc::new(LayerInner { backend, ctx, fallback_reason, weights: w }) }.into())
        })
    }

    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> Result<Ts<ActiveBackend>, JsError> {
        let b = match self.inner.backend {
            LayerBackend::Gpu(_) => ActiveBackend::Webgpu,
            LayerBackend::Cpu => ActiveBackend::Cpu,
        };
        Ok(b.into_ts()?)
    }

    /// Why the CPU path runs, if it does.
    #[wasm_bindgen(getter, js_name = fallbackReason)]
    pub fn fallback_reason(&self) -> Option<String> {
        self.inner.fallback_reason.clone()
    }

    /// Why the layer's GPU device was lost, once it is.
    #[wasm_bindgen(getter, js_name = deviceLost)]
    pub fn device_lost(&self) -> Option<String> {
        self.inner.ctx.as_ref().and_then(|c| c.check_alive().err()).map(|e| e.to_string())
    }

    /// The model width d (x is [batch, tokens, d]).
    #[wasm_bindgen(getter)]
    pub fn d(&self) -> usize {
        self.inner.weights.d
    }

    /// Frees the GPU memory now (the device is destroyed).
    pub fn dispose(&self) {
        if let Some(ctx) = &self.inner.ctx {
            ctx.device.destroy();
        }
    }

    /// Runs x [batch, tokens, d]; resolves to `{y, dispatch, combine}` (maps [b, m, n, p]).
    #[wasm_bindgen(unchecked_return_type = "Promise<LayerResult>")]
    pub fn forward(&self, #[wasm_bindgen(unchecked_param_type = "Float32Array")] x: JsValue, batch: usize, tokens: usize) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let d = inner.weights.d;
            let shape = [JsValue::from(batch as u32), JsValue::from(tokens as u32), JsValue::from(d as u32)];
            let x = float32_array(x, &format!("x (batch·tokens·{d} values)"), &shape)?;
            let x = Tensor::new(vec![batch, tokens, d], x.to_vec()).map_err(|e| {
                let v = js_err(e);
                let _ = Reflect::set(&v, &"expectedShape".into(), &shape.iter().collect::<Array>());
                v
            })?;
            let (y, dm, cm) = match &inner.backend {
                LayerBackend::Gpu(layer) => {
                    let o = layer.forward_with_maps(&x).await.map_err(js_err)?;
                    (o.y.data, o.dispatch.map(|t| t.data).unwrap_or_default(), o.combine.map(|t| t.data).unwrap_or_default())
                }
                LayerBackend::Cpu => {
                    let r = soft_moe_forward(&inner.weights, &x).map_err(js_err)?;
                    let f = |v: Vec<f64>| v.into_iter().map(|a| a as f32).collect::<Vec<f32>>();
                    (f(r.y), f(r.dispatch), f(r.combine))
                }
            };
            let out = LayerResult { y: f32s(&y), dispatch: f32s(&dm), combine: f32s(&cm) };
            serde_wasm_bindgen::to_value(&out).map_err(|e| coded(&format!("internal error: {e}"), "INTERNAL", &[]))
        })
    }
}
