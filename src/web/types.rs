//! The values the wasm API takes and returns, with their TypeScript types generated from these
//! definitions (tsify): the npm package's `.d.ts` re-exports them, so the types cannot drift from
//! what the Rust side builds.

use js_sys::{Float32Array, Function, Int32Array};
use serde::{Deserialize, Deserializer, Serialize};
use tsify::Tsify;
use wasm_bindgen::{JsCast, JsValue};

use crate::model::VitConfig;

/// Which path runs the model: `auto` (WebGPU on a hardware adapter, else the CPU path), `webgpu`
/// (any WebGPU adapter, a software one included; an error without one) or `cpu`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Auto,
    Webgpu,
    Cpu,
}

/// How the Soft MoE blocks' expert weights are stored on the GPU: `f32` (default: the official math
/// to ~1e-7), `f16` (half the memory and bandwidth, f32 arithmetic; an error where the device lacks
/// `shader-f16`, the model has no Soft MoE block or runs on the CPU path) or `auto` (f16 where that
/// works, else f32; the model's `precision` says which).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, Tsify)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    #[default]
    F32,
    F16,
    Auto,
}

/// The path a loaded model runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Tsify)]
#[serde(rename_all = "lowercase")]
pub enum ActiveBackend {
    Webgpu,
    Cpu,
}

/// What the wasm loader takes besides the bytes (the npm package's `loadModel` fills it in).
#[derive(Default, Deserialize, Tsify)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WasmLoadOptions {
    #[serde(default)]
    #[tsify(optional)]
    pub backend: Backend,
    /// The config's name in errors (its URL); default `config.json`.
    #[serde(default)]
    #[tsify(optional)]
    pub config_name: Option<String>,
    /// The weights' name in errors (their URL); default `model.safetensors` (`layer.safetensors`).
    #[serde(default)]
    #[tsify(optional)]
    pub weights_name: Option<String>,
    /// Load a file holding tensors the config does not use (they are ignored) instead of refusing it.
    #[serde(default)]
    #[tsify(optional)]
    pub allow_unused: bool,
    /// How the expert weights are stored on the GPU (default `f32`).
    #[serde(default)]
    #[tsify(optional)]
    pub precision: Precision,
    /// Called with `device` and `upload` as those stages begin.
    #[serde(default, deserialize_with = "function")]
    #[tsify(optional, type = "(stage: 'device' | 'upload') => void")]
    pub on_stage: Option<Function>,
    /// Called once with the reason when the model's GPU device is lost (not after `dispose`).
    #[serde(default, deserialize_with = "function")]
    #[tsify(optional, type = "(reason: string) => void")]
    pub on_device_lost: Option<Function>,
}

impl WasmLoadOptions {
    /// The JS names of the fields (serde-wasm-bindgen reads only these and ignores any other key).
    pub const KEYS: [&'static str; 7] = ["backend", "configName", "weightsName", "allowUnused", "precision", "onStage", "onDeviceLost"];
}

fn function<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Function>, D::Error> {
    let v: JsValue = serde_wasm_bindgen::preserve::deserialize(d)?;
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    v.dyn_into::<Function>().map(Some).map_err(|_| serde::de::Error::custom("a callback must be a function"))
}

/// A model's hyper-parameters, keyed as in its config.json.
#[derive(Clone, Serialize, Tsify)]
pub struct ModelConfig {
    pub image_size: usize,
    pub channels: usize,
    pub patch_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub mlp_dim: usize,
    pub num_classes: usize,
    /// The blocks whose MLP is a mixture of experts.
    pub moe_layers: Vec<usize>,
    pub num_experts: usize,
    /// Soft MoE only (0 for the sparse routers).
    pub slots_per_expert: usize,
    pub expert_mlp_dim: usize,
    #[tsify(type = "'tanh' | 'erf'")]
    pub gelu: &'static str,
    pub normalize: bool,
    pub layer_norm_eps: f32,
    pub class_names: Vec<String>,
    /// LayerNorm on each head's queries and keys (vmoe's `attention_qk_norm`).
    pub attention_qk_norm: bool,
    /// How the encoder's output is pooled for the head: the mean over the tokens, a class token,
    /// or vmoe's MAP head.
    #[tsify(type = "'gap' | 'token' | 'map'")]
    pub classifier: &'static str,
    /// vmoe's Bfloat16Dispatcher: X and Ỹ rounded to bfloat16 around the Soft MoE products.
    pub dispatch_bfloat16: bool,
    /// Which Soft MoE layer the Soft MoE blocks are: vmoe's, or soft-moe-pytorch's (RMSNorm-ed
    /// tokens and slots, no logit scale).
    #[tsify(type = "'vmoe' | 'soft-moe-pytorch'")]
    pub moe_variant: &'static str,
    /// What the MoE blocks route with; `dense` when there are none.
    #[tsify(type = "'soft' | 'tokens_choice' | 'experts_choice' | 'dense'")]
    pub moe_type: &'static str,
    /// Tokens Choice's top-k (absent otherwise).
    #[tsify(optional)]
    pub router_k: Option<usize>,
    /// The sparse routers' capacity factor (absent for Soft MoE).
    #[tsify(optional)]
    pub capacity_factor: Option<f64>,
    #[tsify(optional)]
    pub capacity_multiple_of: Option<usize>,
    /// Images per routing group of a sparse router (absent for Soft MoE).
    #[tsify(optional)]
    pub group_size: Option<usize>,
}

impl From<&VitConfig> for ModelConfig {
    fn from(c: &VitConfig) -> Self {
        // Every field named, no `..`: a field added to VitConfig fails to compile here until the
        // config object (and so its TypeScript type) says what becomes of it.
        let VitConfig {
            image_size,
            channels,
            patch_size,
            hidden_size,
            num_layers,
            num_heads,
            mlp_dim,
            num_classes,
            moe_layers,
            num_experts,
            slots_per_expert,
            expert_mlp_dim,
            gelu,
            normalize,
            layer_norm_eps,
            class_names,
            router,
            group_size,
            attention_qk_norm,
            classifier,
            dispatch_bfloat16,
            moe_variant,
        } = c;
        ModelConfig {
            image_size: *image_size,
            channels: *channels,
            patch_size: *patch_size,
            hidden_size: *hidden_size,
            num_layers: *num_layers,
            num_heads: *num_heads,
            mlp_dim: *mlp_dim,
            num_classes: *num_classes,
            moe_layers: moe_layers.clone(),
            num_experts: *num_experts,
            slots_per_expert: if router.is_some() { 0 } else { *slots_per_expert },
            expert_mlp_dim: *expert_mlp_dim,
            gelu: gelu.name(),
            normalize: *normalize,
            layer_norm_eps: *layer_norm_eps,
            // The names, or the class numbers where config.json has none.
            class_names: (0..*num_classes).map(|k| class_names.get(k).cloned().unwrap_or_else(|| k.to_string())).collect(),
            attention_qk_norm: *attention_qk_norm,
            classifier: classifier.name(),
            dispatch_bfloat16: *dispatch_bfloat16,
            moe_variant: moe_variant.name(),
            moe_type: c.moe_type(),
            router_k: router.filter(|r| r.k() > 0).map(|r| r.k()),
            capacity_factor: router.map(|r| r.capacity_factor()),
            capacity_multiple_of: router.map(|r| r.capacity_multiple_of()),
            group_size: router.map(|_| *group_size),
        }
    }
}

/// A JS typed array carried through serde as it is (no copy into a plain array).
fn typed<S: serde::Serializer, T: AsRef<JsValue>>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    serde_wasm_bindgen::preserve::serialize(v.as_ref(), s)
}

/// How one MoE block routed one image.
#[derive(Serialize, Tsify)]
#[serde(tag = "kind")]
pub enum RoutedLayer {
    /// A Soft MoE block: `dispatch` and `combine` are [grid², experts·slotsPerExpert], row-major,
    /// over the patch tokens; with classifier `token` the class token's rows come apart in
    /// `classToken` (null otherwise), and dispatch's columns sum to 1 with its row included.
    #[serde(rename = "soft", rename_all = "camelCase")]
    Soft {
        block: u32,
        /// Patches per side (tokens = grid²).
        grid: u32,
        experts: u32,
        slots_per_expert: u32,
        #[serde(serialize_with = "typed")]
        #[tsify(type = "Float32Array")]
        dispatch: Float32Array,
        #[serde(serialize_with = "typed")]
        #[tsify(type = "Float32Array")]
        combine: Float32Array,
        #[tsify(type = "ClassTokenMaps | null")]
        class_token: Option<ClassTokenMaps>,
    },
    /// A Tokens Choice block: `gates` [grid², experts] (softmax over experts) over the patch tokens
    /// (a class token's routing is left out) and, per (token, expert), the slot the token took in
    /// that expert's buffer, or -1; a token with no slot was dropped.
    #[serde(rename = "tokens_choice", rename_all = "camelCase")]
    TokensChoice {
        block: u32,
        grid: u32,
        experts: u32,
        #[serde(serialize_with = "typed")]
        #[tsify(type = "Float32Array")]
        gates: Float32Array,
        #[serde(serialize_with = "typed")]
        #[tsify(type = "Int32Array")]
        slots: Int32Array,
    },
    /// An Experts Choice block, laid out as a Tokens Choice one.
    #[serde(rename = "experts_choice", rename_all = "camelCase")]
    ExpertsChoice {
        block: u32,
        grid: u32,
        experts: u32,
        #[serde(serialize_with = "typed")]
        #[tsify(type = "Float32Array")]
        gates: Float32Array,
        #[serde(serialize_with = "typed")]
        #[tsify(type = "Int32Array")]
        slots: Int32Array,
    },
}

/// The class token's dispatch and combine rows ([experts·slotsPerExpert] each) in a Soft MoE block.
#[derive(Serialize, Tsify)]
pub struct ClassTokenMaps {
    #[serde(serialize_with = "typed")]
    #[tsify(type = "Float32Array")]
    pub dispatch: Float32Array,
    #[serde(serialize_with = "typed")]
    #[tsify(type = "Float32Array")]
    pub combine: Float32Array,
}

/// One image's result.
#[derive(Serialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct Classification {
    /// The predicted class.
    pub label: u32,
    pub class_name: String,
    #[serde(serialize_with = "typed")]
    #[tsify(type = "Float32Array")]
    pub probs: Float32Array,
    #[serde(serialize_with = "typed")]
    #[tsify(type = "Float32Array")]
    pub logits: Float32Array,
    /// Every MoE block's routing when maps were asked for, else empty; none for a dense model.
    pub layers: Vec<RoutedLayer>,
    /// Milliseconds the forward took where the model runs (for a batch: the whole batch), without
    /// the messaging to and from a worker.
    pub ms: f64,
    pub backend: ActiveBackend,
}

/// A bare layer's output: `y` [batch, tokens, d]; `dispatch` and `combine` [batch, tokens, n, p].
#[derive(Serialize, Tsify)]
pub struct LayerResult {
    #[serde(serialize_with = "typed")]
    #[tsify(type = "Float32Array")]
    pub y: Float32Array,
    #[serde(serialize_with = "typed")]
    #[tsify(type = "Float32Array")]
    pub dispatch: Float32Array,
    #[serde(serialize_with = "typed")]
    #[tsify(type = "Float32Array")]
    pub combine: Float32Array,
}
