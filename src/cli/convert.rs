//! `softmoe convert --from FORMAT IN.safetensors OUT.safetensors`: another library's weights in
//! softmoe's names and layouts (`softmoe::weights::convert`), written atomically.

use std::path::PathBuf;

use softmoe::weights::convert::{soft_moe_pytorch_layer, ConvertFrom};
use softmoe::weights::safetensors::write_atomic;
use softmoe::{Error, SafeTensors};

use super::args::Args;

pub fn run(mut args: Args) -> Result<(), Error> {
    let names = || ConvertFrom::ALL.map(|f| format!("`{}`", f.name())).join(", ");
    let from = args.required("from")?;
    let from = ConvertFrom::parse(&from)
        .ok_or_else(|| Error::Usage(format!("--from `{from}` is not a format softmoe converts; one of {}", names())))?;
    let [input, output] = args.positionals(["IN.safetensors", "OUT.safetensors"])?.map(PathBuf::from);
    let same = std::fs::canonicalize(&output).ok().is_some_and(|o| std::fs::canonicalize(&input).ok() == Some(o));
    if same {
        return Err(Error::Usage(format!("{}: OUT is IN; write the converted weights to another file", output.display())));
    }
    let st = SafeTensors::read(&input)?;
    let (bytes, summary) = match from {
        ConvertFrom::SoftMoePytorch => {
            let w = soft_moe_pytorch_layer(&st)?;
            let summary = format!(
                "a soft-moe-pytorch SoftMoE layer: d = {}, {} experts × {} slots, hidden {}, {} GELU (metadata variant = {})",
                w.d,
                w.n,
                w.p,
                w.h,
                w.gelu.name(),
                w.variant.name()
            );
            (w.to_safetensors(), summary)
        }
    };
    write_atomic(&output, &bytes)?;
    println!("{}: {summary}", output.display());
    Ok(())
}
