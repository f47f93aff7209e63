//! `softmoe analyze`: how each Soft MoE block routes a data set (docs/analysis.md): analysis.json
//! (docs/analysis.schema.json) and its PNG figures in --out.

use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use softmoe::analysis::{figures, Analyzer};
use softmoe::data::{self, PIXELS};
use softmoe::images::read_image_tensor;
use softmoe::weights::{LoadOptions, SafeTensors, VitWeights};
use softmoe::{Error, Tensor};

use super::args::Args;
use super::model::Backend;

/// Images with their labels, [b, S, S] and [b].
struct ImageSet {
    images: Vec<f32>,
    labels: Vec<usize>,
    what: String,
}

pub fn run(mut args: Args) -> Result<(), Error> {
    let model = PathBuf::from(args.required("model")?);
    let data_dir = args.option("data")?.map(PathBuf::from);
    let images = args.option("images")?.map(PathBuf::from);
    let out = PathBuf::from(args.option("out")?.unwrap_or_else(|| "analysis".into()));
    let positive = |name: &str, args: &mut Args| -> Result<Option<usize>, Error> {
        args.option(name)?
            .map(|s| {
                s.parse()
                    .ok()
                    .filter(|&v: &usize| v > 0)
                    .ok_or_else(|| Error::Usage(format!("--{name} must be a positive integer, got `{s}`")))
            })
            .transpose()
    };
    let sample = positive("sample", &mut args)?;
    let batch = positive("batch", &mut args)?;
    let cpu = args.switch("cpu");
    let allow_unused = args.switch("allow-unused");
    args.finish()?;
    if data_dir.is_some() && images.is_some() {
        return Err(Error::Usage("give --data DIR or --images FILE, not both".into()));
    }

    // Everything the user gave is read and checked before the GPU is touched.
    let weights = VitWeights::load_with(&model, LoadOptions { allow_unused })?;
    let mut analyzer = Analyzer::new(&weights).map_err(|e| Error::Usage(format!("{}: {e}", model.display())))?;
    let config = weights.config.clone();
    let side = config.image_size;
    let set = match &images {
        Some(file) => read_labelled(file, side, config.num_classes)?,
        None => read_test_split(data_dir.as_deref().unwrap_or(Path::new("target/fashion-mnist")), side)?,
    };
    let indices = super::eval::sample_indices(set.labels.len(), 1, sample)?;
    std::fs::create_dir_all(&out).map_err(|source| Error::Io { path: out.clone(), source })?;
    let backend = Backend::new(weights, cpu, false)?;
    let batch = batch.unwrap_or(if cpu { 16 } else { 256 });

    let per = side * side;
    let bar = ProgressBar::new(indices.len() as u64).with_style(
        ProgressStyle::with_template("analyze [{bar:30}] {pos}/{len} images, {per_sec}, ETA {eta}")
            .map_err(|e| Error::Internal(format!("progress template: {e}")))?,
    );
    for chunk in indices.chunks(batch) {
        let pixels: Vec<f32> = chunk.iter().flat_map(|&i| set.images[i * per..(i + 1) * per].iter().copied()).collect();
        let o = pollster::block_on(backend.0.classify(&Tensor::new(vec![chunk.len(), side, side], pixels)?, true))?;
        let labels: Vec<usize> = chunk.iter().map(|&i| set.labels[i]).collect();
        analyzer.add(&o.maps, &labels)?;
        bar.inc(chunk.len() as u64);
    }
    bar.finish();
    let name = model.file_name().map_or_else(|| model.display().to_string(), |n| n.to_string_lossy().into_owned());
    let report = analyzer.finish(&name, if cpu { "cpu-f64" } else { "gpu" })?;
    let json_path = out.join("analysis.json");
    let text = serde_json::to_string(&report).map_err(|e| Error::Internal(format!("analysis.json: {e}")))? + "\n";
    softmoe::weights::safetensors::write_atomic(&json_path, text.as_bytes())?;
    let pngs = figures::write_all(&report, &out)?;
    println!("images: {} ({})", analyzer.images(), set.what);
    println!("wrote {}", json_path.display());
    for p in pngs {
        println!("wrote {}", p.display());
    }
    Ok(())
}

/// The Fashion-MNIST test split in `dir`.
fn read_test_split(dir: &Path, side: usize) -> Result<ImageSet, Error> {
    if side * side != PIXELS {
        return Err(Error::Input {
            what: "the model's image_size".into(),
            expected: "28 (Fashion-MNIST images are 28×28; --images FILE takes other sizes)".into(),
            found: side.to_string(),
        });
    }
    let set = data::load(dir).map_err(|e| match e {
        Error::Io { .. } | Error::Input { .. } => Error::Usage(format!(
            "{e} (`cargo xtask data` fetches Fashion-MNIST into target/fashion-mnist; --data DIR names another folder)"
        )),
        e => e,
    })?;
    Ok(ImageSet {
        labels: set.test.labels.iter().map(|&l| usize::from(l)).collect(),
        images: set.test.images,
        what: format!("the Fashion-MNIST test split in {}", dir.display()),
    })
}

/// `images` f32 [b, S, S] and `labels` f32 [b] (whole class numbers) from a safetensors file.
fn read_labelled(file: &Path, side: usize, classes: usize) -> Result<ImageSet, Error> {
    let x = read_image_tensor(file, side)?;
    let st = SafeTensors::read(file)?;
    let l = st.tensor_f32("labels")?;
    let b = x.shape[0];
    if l.shape != [b] {
        return Err(Error::Shape {
            context: file.display().to_string(),
            name: "labels".into(),
            found: l.shape,
            expected: format!("[{b}]"),
        });
    }
    let labels = l
        .data
        .iter()
        .map(|&v| {
            if v.fract() == 0.0 && v >= 0.0 && (v as usize) < classes {
                Ok(v as usize)
            } else {
                Err(Error::Input {
                    what: format!("{}: tensor `labels`", file.display()),
                    expected: format!("class numbers in 0..{classes}"),
                    found: v.to_string(),
                })
            }
        })
        .collect::<Result<_, _>>()?;
    Ok(ImageSet { images: x.data, labels, what: file.display().to_string() })
}
