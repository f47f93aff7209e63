//! `softmoe classify`: a trained ViT on a safetensors batch or PNG files.

use std::path::PathBuf;

use softmoe::images::{png_to_gray, read_image_tensor};
use softmoe::model::VitConfig;
use softmoe::Error;
use softmoe::Tensor;

use super::args::Args;
use super::model::Backend;

pub fn run(mut args: Args) -> Result<(), Error> {
    let model = PathBuf::from(args.required("model")?);
    let files = args.values("images")?;
    if files.is_empty() {
        return Err(Error::Usage("--images is required".into()));
    }
    let batch: usize = match args.option("batch")? {
        None => 64,
        Some(s) => {
            s.parse().ok().filter(|&b| b > 0).ok_or_else(|| Error::Usage(format!("--batch must be a positive integer, got `{s}`")))?
        }
    };
    let cpu = args.switch("cpu");
    let f16 = args.switch("f16");
    let json = args.switch("json");
    let allow_unused = args.switch("allow-unused");
    args.finish()?;

    // Everything the user gave is read and checked before the GPU is touched.
    let options = softmoe::weights::LoadOptions { allow_unused };
    let weights = softmoe::weights::VitWeights::load_with(&model, options)?;
    let config = weights.config.clone();
    let images = read_images(&files, &config)?;
    let backend = Backend::new(weights, cpu, f16)?;
    let per = config.image_size * config.image_size;
    let n = images.shape[0];
    let mut start = 0;
    while start < n {
        let len = batch.min(n - start);
        let chunk = Tensor::new(vec![len, config.image_size, config.image_size], images.data[start * per..(start + len) * per].to_vec())?;
        let out = backend.classify(&chunk)?;
        let k = config.num_classes;
        for i in 0..len {
            let label = out.predictions[i];
            let probs = &out.probs[i * k..(i + 1) * k];
            let logits = &out.logits[i * k..(i + 1) * k];
            if json {
                println!("{}", json_line(start + i, label, &config, probs, logits));
            } else {
                println!("{}: {} ({:.1}%)", start + i, config.class_name(label), 100.0 * probs[label]);
            }
        }
        start += len;
    }
    Ok(())
}

/// One JSON object; f32 values printed in their shortest form that reads back to the same f32.
fn json_line(index: usize, label: usize, config: &VitConfig, probs: &[f32], logits: &[f32]) -> String {
    let list = |v: &[f32]| v.iter().map(|x| format!("{x:?}")).collect::<Vec<_>>().join(", ");
    let class = serde_json::to_string(&config.class_name(label)).unwrap_or_default();
    format!("{{\"index\": {index}, \"label\": {label}, \"class\": {class}, \"probs\": [{}], \"logits\": [{}]}}", list(probs), list(logits))
}

/// A safetensors file of `images`, or PNG files converted to the model's size.
fn read_images(files: &[String], config: &VitConfig) -> Result<Tensor, Error> {
    let side = config.image_size;
    if config.channels != 1 {
        return Err(Error::Input {
            what: "the model's channels".into(),
            expected: "1 (classify reads grayscale images)".into(),
            found: config.channels.to_string(),
        });
    }
    if files.len() == 1 && !files[0].to_ascii_lowercase().ends_with(".png") {
        return read_image_tensor(&PathBuf::from(&files[0]), side);
    }
    let mut data = Vec::with_capacity(files.len() * side * side);
    for f in files {
        data.extend(png_to_gray(&PathBuf::from(f), side)?);
    }
    Tensor::new(vec![files.len(), side, side], data)
}
