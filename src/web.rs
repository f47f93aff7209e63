//! The browser API (wasm32): load a model, classify images, read the Soft MoE maps; and the bare
//! `SoftMoe` layer. WebGPU when the browser has it, else the CPU path compiled into the wasm — the
//! objects say which backend runs and why. Every failure rejects the promise with a message.

use std::rc::Rc;
use std::sync::Arc;

use js_sys::{Array, Float32Array, Int32Array, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::error::Error;
use crate::layers::SoftMoe;
use crate::model::{Classifier, Vit, VitConfig};
use crate::reference::soft_moe_forward;
use crate::weights::{LoadOptions, SafeTensors, SoftMoeWeights, VitWeights};
use crate::{GpuContext, Tensor};

fn js_err(e: Error) -> JsValue {
    JsError::new(&e.to_string()).into()
}

fn obj(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        // Setting a property on a fresh plain object cannot fail.
        let _ = Reflect::set(&o, &JsValue::from_str(k), v);
    }
    o.into()
}

fn f32s(v: &[f32]) -> JsValue {
    Float32Array::from(v).into()
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

/// `v` as a Float32Array, or an error naming what `what` must be and what came instead. (wasm-bindgen
/// does not check the class of an argument: an Int32Array or a plain array would be converted silently.)
fn float32_array(v: JsValue, what: &str) -> Result<Float32Array, JsValue> {
    if v.is_instance_of::<Float32Array>() {
        Ok(v.unchecked_into())
    } else {
        Err(JsError::new(&format!("{what} must be a Float32Array, got {}", describe(&v))).into())
    }
}

/// Which backend a caller asked for: "auto" (default), "webgpu" or "cpu".
fn parse_backend(b: Option<String>) -> Result<Option<bool>, JsValue> {
    match b.as_deref() {
        None | Some("auto") => Ok(None),
        Some("webgpu") => Ok(Some(true)),
        Some("cpu") => Ok(Some(false)),
        Some(other) => Err(JsError::new(&format!("backend `{other}` is not one of auto, webgpu, cpu")).into()),
    }
}

/// A WebGPU device, or why there is none (an error only when WebGPU was required).
async fn device(want: Option<bool>) -> Result<Result<Arc<GpuContext>, String>, JsValue> {
    if want == Some(false) {
        return Ok(Err("the CPU backend was requested".into()));
    }
    match GpuContext::new().await {
        Ok(ctx) => Ok(Ok(ctx)),
        Err(e) if want == Some(true) => {
            Err(JsError::new(&format!("backend `webgpu` was requested, but this browser gives no WebGPU adapter ({e})")).into())
        }
        Err(e) => Ok(Err(e.to_string())),
    }
}

/// A Soft MoE block's index with its dispatch and combine weights.
type BlockMaps = (usize, Vec<f32>, Vec<f32>);
/// A sparse block's (block, gates [b·m·n], slots [b·m·n] with -1 for none).
type BlockRoutes = (usize, Vec<f32>, Vec<i32>);

/// The class token's `{dispatch, combine}` rows ([n·p] each) of a Soft MoE block, or null without one.
fn class_token(first: usize, dispatch: &[f32], combine: &[f32]) -> JsValue {
    if first == 0 {
        return JsValue::NULL;
    }
    obj(&[("dispatch", f32s(dispatch)), ("combine", f32s(combine))])
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

struct ModelInner {
    backend: Classifier,
    config: VitConfig,
    adapter: String,
    fallback_reason: Option<String>,
}

/// A Soft MoE ViT loaded in the browser.
#[wasm_bindgen]
pub struct Model {
    inner: Rc<ModelInner>,
}

#[wasm_bindgen]
impl Model {
    /// Loads a model from its `config.json` text and `model.safetensors` bytes; resolves to a Model.
    /// `backend` is "auto" (WebGPU, else CPU), "webgpu" or "cpu"; with `allow_unused`, tensors the
    /// config does not use are ignored instead of refused. The native loader's code path
    /// (`VitWeights::from_parts_with`).
    pub fn load(config_json: String, weights: Vec<u8>, backend: Option<String>, allow_unused: Option<bool>) -> Promise {
        future_to_promise(async move {
            let want = parse_backend(backend)?;
            let config = VitConfig::from_json(&config_json, "config.json").map_err(js_err)?;
            let st = SafeTensors::parse(weights, "model.safetensors").map_err(js_err)?;
            let options = LoadOptions { allow_unused: allow_unused.unwrap_or(false) };
            let w = VitWeights::from_parts_with(config.clone(), &st, options).map_err(js_err)?;
            let inner = match device(want).await? {
                Ok(ctx) => {
                    let adapter = adapter_name(&ctx);
                    let vit = Vit::new(ctx, &w).await.map_err(js_err)?;
                    ModelInner { backend: Classifier::Gpu(vit), config, adapter, fallback_reason: None }
                }
                Err(reason) => ModelInner {
                    backend: Classifier::Cpu(w),
                    config,
                    adapter: "CPU (f64 reference in wasm)".into(),
                    fallback_reason: Some(reason),
                },
            };
            Ok(Model { inner: Rc::new(inner) }.into())
        })
    }

    /// "webgpu" or "cpu".
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.inner.backend.backend().into()
    }

    /// The adapter's name and backend, or the CPU path.
    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> String {
        self.inner.adapter.clone()
    }

    /// Why the CPU path runs (no `navigator.gpu`, no adapter, or asked for), if it does.
    #[wasm_bindgen(getter, js_name = fallbackReason)]
    pub fn fallback_reason(&self) -> Option<String> {
        self.inner.fallback_reason.clone()
    }

    /// The model's `config.json`.
    #[wasm_bindgen(getter)]
    pub fn config(&self) -> String {
        self.inner.config.to_json()
    }

    #[wasm_bindgen(getter, js_name = classNames)]
    pub fn class_names(&self) -> Array {
        let c = &self.inner.config;
        (0..c.num_classes).map(|k| JsValue::from_str(&c.class_name(k))).collect()
    }

    /// Classifies `pixels` (b·S·S grayscale values in [0, 1]); resolves to an array with, per image,
    /// `{label, className, probs, logits, layers}` where `layers` holds, when `maps` is true, each
    /// Soft MoE block's `{block, grid, experts, slotsPerExpert, dispatch, combine, classToken}`
    /// (dispatch and combine [grid², n·p] over the patch tokens; `classToken` the class token's
    /// `{dispatch, combine}` rows with classifier `token`, else null).
    pub fn classify(&self, pixels: JsValue, maps: bool) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let c = &inner.config;
            let per = c.image_size * c.image_size * c.channels;
            let pixels = float32_array(pixels, &format!("pixels (b·{per} grayscale values in [0, 1])"))?;
            let data = pixels.to_vec();
            if per == 0 || data.is_empty() || !data.len().is_multiple_of(per) {
                return Err(JsError::new(
                    &format!("pixels hold {} values, not a multiple of {per} (one {0}×{0} image)", data.len())
                        .replace("{0}", &c.image_size.to_string()),
                )
                .into());
            }
            if let Some(i) = data.iter().position(|v| !v.is_finite() || !(0.0..=1.0).contains(v)) {
                return Err(JsError::new(&format!("pixel {i} is {}, outside [0, 1]", data[i])).into());
            }
            let b = data.len() / per;
            let images = Tensor::new(vec![b, c.image_size, c.image_size, c.channels], data).map_err(js_err)?;
            let k = c.num_classes;
            // Both paths through one classifier: the same layout of logits, maps and routes.
            let o = inner.backend.classify(&images, maps).await.map_err(js_err)?;
            let slot = |s: &Option<u32>| s.map_or(-1, |v| v as i32);
            let layer_routes: Vec<BlockRoutes> =
                o.routes.into_iter().map(|r| (r.block, r.gates.data, r.slots.iter().map(slot).collect())).collect();
            let layer_maps: Vec<BlockMaps> = o.maps.into_iter().map(|m| (m.block, m.dispatch.data, m.combine.data)).collect();
            let (logits, probs, predictions) = (o.logits, o.probs, o.predictions);
            // Per image: its seq_len tokens' rows; with a class token (row 0) the `dispatch`/`combine`
            // of a layer are the grid's patch rows, and the class token's row comes apart.
            let (s, n) = (c.num_experts * c.slots_per_expert, c.num_experts);
            let (per_map, per_route) = (c.seq_len() * s, c.seq_len() * n);
            let first = c.seq_len() - c.tokens();
            let kind = c.moe_type();
            let out = Array::new();
            for i in 0..b {
                let label = predictions[i];
                let layers: Array = layer_maps
                    .iter()
                    .map(|(blk, d, cm)| {
                        obj(&[
                            ("kind", "soft".into()),
                            ("block", (*blk as u32).into()),
                            ("grid", (c.grid() as u32).into()),
                            ("experts", (c.num_experts as u32).into()),
                            ("slotsPerExpert", (c.slots_per_expert as u32).into()),
                            ("dispatch", f32s(&d[i * per_map + first * s..(i + 1) * per_map])),
                            ("combine", f32s(&cm[i * per_map + first * s..(i + 1) * per_map])),
                            (
                                "classToken",
                                class_token(first, &d[i * per_map..i * per_map + first * s], &cm[i * per_map..i * per_map + first * s]),
                            ),
                        ])
                    })
                    .chain(layer_routes.iter().map(|(blk, g, sl)| {
                        obj(&[
                            ("kind", kind.into()),
                            ("block", (*blk as u32).into()),
                            ("grid", (c.grid() as u32).into()),
                            ("experts", (c.num_experts as u32).into()),
                            ("gates", f32s(&g[i * per_route + first * n..(i + 1) * per_route])),
                            ("slots", Int32Array::from(&sl[i * per_route + first * n..(i + 1) * per_route]).into()),
                        ])
                    }))
                    .collect();
                out.push(&obj(&[
                    ("label", (label as u32).into()),
                    ("className", c.class_name(label).into()),
                    ("probs", f32s(&probs[i * k..(i + 1) * k])),
                    ("logits", f32s(&logits[i * k..(i + 1) * k])),
                    ("layers", layers.into()),
                ]));
            }
            Ok(out.into())
        })
    }

    /// Converts an `ImageData` (any size, RGBA) to the model's S×S grayscale input in [0, 1]: composited
    /// over black (transparent pixels are black), Rec. 709 luma and a triangle-filter resize — what
    /// `softmoe classify --images FILE.png` does to an opaque PNG, with the same `image` crate calls.
    #[wasm_bindgen(js_name = pixelsFromImageData)]
    pub fn pixels_from_image_data(&self, image: &web_sys::ImageData) -> Result<Float32Array, JsValue> {
        let (w, h) = (image.width(), image.height());
        let rgba = image.data().0;
        if w == 0 || h == 0 || rgba.len() != (w as usize) * (h as usize) * 4 {
            return Err(JsError::new(&format!("ImageData is empty or malformed: {w}×{h} with {} bytes", rgba.len())).into());
        }
        let rgb: Vec<u8> = rgba
            .chunks_exact(4)
            .flat_map(|p| {
                let over_black = |c: u8| ((c as u32 * p[3] as u32 + 127) / 255) as u8;
                [over_black(p[0]), over_black(p[1]), over_black(p[2])]
            })
            .collect();
        let rgb = image::RgbImage::from_raw(w, h, rgb).ok_or_else(|| JsError::new("ImageData size mismatch"))?;
        let gray = image::DynamicImage::ImageRgb8(rgb).to_luma8();
        let s = self.inner.config.image_size as u32;
        let small = image::imageops::resize(&gray, s, s, image::imageops::FilterType::Triangle);
        Ok(small.pixels().map(|p| p.0[0] as f32 / 255.0).collect::<Vec<f32>>().as_slice().into())
    }
}

enum LayerBackend {
    Gpu(SoftMoe),
    Cpu,
}

struct LayerInner {
    backend: LayerBackend,
    weights: SoftMoeWeights,
}

/// A bare Soft MoE layer, for models of your own.
#[wasm_bindgen(js_name = SoftMoeLayer)]
pub struct Layer {
    inner: Rc<LayerInner>,
}

#[wasm_bindgen(js_class = SoftMoeLayer)]
impl Layer {
    /// Loads a layer from safetensors bytes (SPEC names, optional `gelu`/`normalize` metadata), as
    /// `softmoe layer` does (`SoftMoeWeights::from_layer_file`).
    pub fn load(weights: Vec<u8>, backend: Option<String>, allow_unused: Option<bool>) -> Promise {
        future_to_promise(async move {
            let want = parse_backend(backend)?;
            let st = SafeTensors::parse(weights, "layer.safetensors").map_err(js_err)?;
            let options = LoadOptions { allow_unused: allow_unused.unwrap_or(false) };
            let w = SoftMoeWeights::from_layer_file(&st, options).map_err(js_err)?;
            let backend = match device(want).await? {
                Ok(ctx) => LayerBackend::Gpu(SoftMoe::new(ctx, &w).await.map_err(js_err)?),
                Err(_) => LayerBackend::Cpu,
            };
            Ok(Layer { inner: Rc::new(LayerInner { backend, weights: w }) }.into())
        })
    }

    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        match self.inner.backend {
            LayerBackend::Gpu(_) => "webgpu".into(),
            LayerBackend::Cpu => "cpu".into(),
        }
    }

    /// Runs x [batch, tokens, d]; resolves to `{y, dispatch, combine}` (Float32Arrays, maps [b, m, n, p]).
    pub fn forward(&self, x: JsValue, batch: usize, tokens: usize) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let d = inner.weights.d;
            let x = float32_array(x, &format!("x (batch·tokens·{d} values)"))?;
            let x = Tensor::new(vec![batch, tokens, d], x.to_vec()).map_err(js_err)?;
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
            Ok(obj(&[("y", f32s(&y)), ("dispatch", f32s(&dm)), ("combine", f32s(&cm))]))
        })
    }
}
