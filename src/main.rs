//! The `softmoe` command-line program: `info`, `layer`, `classify`, `eval`, `batch-effects`, `convert` (see
//! `softmoe help`).

#[cfg(not(target_arch = "wasm32"))]
mod cli;

#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    cli::main()
}

#[cfg(target_arch = "wasm32")]
fn main() {}
