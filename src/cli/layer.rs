//! `softmoe layer`: one Soft MoE layer on a batch, from safetensors to safetensors.

use std::collections::BTreeMap;
use std::path::PathBuf;

use softmoe::reference::soft_moe_forward;
use softmoe::weights::safetensors::{serialize, write_atomic};
use softmoe::weights::LoadOptions;
use softmoe::{Error, GpuContext, SafeTensors, SoftMoe, SoftMoeWeights, Tensor};

use super::args::Args;

pub fn run(mut args: Args) -> Result<(), Error> {
    let weights = PathBuf::from(args.required("weights")?);
    let input = PathBuf::from(args.required("input")?);
    let output = PathBuf::from(args.required("output")?);
    let cpu = args.switch("cpu");
    let allow_unused = args.switch("allow-unused");
    let bf16 = args.switch("dispatch-bfloat16");
    args.finish()?;

    let mut layer = SoftMoeWeights::from_layer_file(&SafeTensors::read(&weights)?, LoadOptions { allow_unused })?;
    // A file from vmoe carries no metadata: the flag asks for vmoe's Bfloat16Dispatcher.
    layer.dispatch_bfloat16 |= bf16;
    let inputs = SafeTensors::read(&input)?;
    let x = inputs.tensor_f32("x")?;
    if x.shape.len() != 3 || x.shape[2] != layer.d {
        return Err(Error::Shape {
            context: input.display().to_string(),
            name: "x".into(),
            found: x.shape.clone(),
            expected: format!("[b, m, {}] (d of the layer in {})", layer.d, weights.display()),
        });
    }
    let (b, m) = (x.shape[0], x.shape[1]);
    let (y, dispatch, combine) = if cpu {
        let r = soft_moe_forward(&layer, &x)?;
        let f = |v: Vec<f64>| v.into_iter().map(|a| a as f32).collect::<Vec<f32>>();
        (f(r.y), f(r.dispatch), f(r.combine))
    } else {
        let ctx = pollster::block_on(GpuContext::new())?;
        let gpu = pollster::block_on(SoftMoe::new(ctx, &layer))?;
        let out = pollster::block_on(gpu.forward_with_maps(&x))?;
        let take = |t: Option<Tensor>| t.map(|t| t.data).unwrap_or_default();
        (out.y.data, take(out.dispatch), take(out.combine))
    };
    let map_shape = vec![b, m, layer.n, layer.p];
    let y = Tensor::new(vec![b, m, layer.d], y)?;
    let dispatch = Tensor::new(map_shape.clone(), dispatch)?;
    let combine = Tensor::new(map_shape, combine)?;
    let mut meta = BTreeMap::new();
    meta.insert("backend".to_string(), if cpu { "cpu-f64".to_string() } else { "gpu".to_string() });
    let bytes = serialize(&[("y", &y), ("dispatch", &dispatch), ("combine", &combine)], &meta);
    write_atomic(&output, &bytes)
}
