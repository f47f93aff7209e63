//! `softmoe convert --from FORMAT IN.safetensors OUT`: another library's weights in softmoe's names
//! and layouts (`softmoe::weights::convert`), converted and checked in memory, then written
//! through temporary files and renames.

use std::path::{Path, PathBuf};

use softmoe::weights::convert::{soft_moe_pytorch_layer, torchvision_vit, ConvertFrom};
use softmoe::weights::safetensors::write_atomic;
use softmoe::{Error, SafeTensors};

use super::args::Args;

pub fn run(mut args: Args) -> Result<(), Error> {
    let names = || ConvertFrom::ALL.map(|f| format!("`{}`", f.name())).join(", ");
    let from = args.required("from")?;
    let from = ConvertFrom::parse(&from)
        .ok_or_else(|| Error::Usage(format!("--from `{from}` is not a format softmoe converts; one of {}", names())))?;
    let heads = args.option("num-heads")?;
    let heads = match (from, heads) {
        (ConvertFrom::TorchvisionVit, None) => {
            return Err(Error::Usage("--num-heads is required with --from torchvision-vit (a state_dict does not record it)".into()))
        }
        (ConvertFrom::TorchvisionVit, Some(h)) => {
            Some(h.parse::<usize>().map_err(|_| Error::Usage(format!("--num-heads `{h}` is not a positive integer")))?)
        }
        (_, Some(_)) => return Err(Error::Usage(format!("--num-heads is for --from torchvision-vit, not `{}`", from.name()))),
        (_, None) => None,
    };
    let out_name = if from == ConvertFrom::TorchvisionVit { "OUT_DIR" } else { "OUT.safetensors" };
    let [input, output] = args.positionals(["IN.safetensors", out_name])?.map(PathBuf::from);
    let same = std::fs::canonicalize(&output).ok().is_some_and(|o| std::fs::canonicalize(&input).ok() == Some(o));
    if same {
        return Err(Error::Usage(format!("{}: OUT is IN; write the converted weights to another file", output.display())));
    }
    let st = SafeTensors::read(&input)?;
    match from {
        ConvertFrom::SoftMoePytorch => {
            let w = soft_moe_pytorch_layer(&st)?;
            write_atomic(&output, &w.to_safetensors())?;
            println!(
                "{}: a soft-moe-pytorch SoftMoE layer: d = {}, {} experts × {} slots, hidden {}, {} GELU (metadata variant = {})",
                output.display(),
                w.d,
                w.n,
                w.p,
                w.h,
                w.gelu.name(),
                w.variant.name()
            );
        }
        ConvertFrom::TorchvisionVit => {
            let w = torchvision_vit(&st, heads.unwrap_or(0))?;
            if output.is_file() {
                return Err(Error::Usage(format!(
                    "{}: OUT_DIR is a file; a model is a folder (config.json + model.safetensors)",
                    output.display()
                )));
            }
            std::fs::create_dir_all(&output).map_err(|e| Error::Io { path: output.clone(), source: e })?;
            write_atomic(&output.join("model.safetensors"), &w.to_safetensors())?;
            write_atomic(&output.join("config.json"), w.config.to_json().as_bytes())?;
            let c = &w.config;
            println!(
                "{}: a torchvision ViT: {}×{}×{} images, patch {}, {} blocks of width {} with {} heads, Soft MoE (soft-moe-pytorch) in blocks {:?}, {} classes",
                Path::new(&output).display(),
                c.image_size,
                c.image_size,
                c.channels,
                c.patch_size,
                c.num_layers,
                c.hidden_size,
                c.num_heads,
                c.moe_layers,
                c.num_classes
            );
        }
    }
    Ok(())
}
