//! `cargo xtask bench-web`: softmoe beside onnxruntime-web in one headless Chromium (bench/onnx).
//!
//! Installs what it needs — Chromium, Node.js with npm, bench/onnx's npm packages (onnxruntime-web,
//! playwright-core; from its package-lock.json), a Python venv with the PyPI packages `onnx` and
//! `numpy` outside the repository (`$SOFTMOE_ONNX_VENV`, default `~/.cache/softmoe/venv-onnx`) —
//! builds the `softmoe` binary and the npm package, makes the ONNX graphs and their f64 references
//! (bench/onnx/make_graphs.py, into target/bench-onnx), and runs bench/onnx/run.mjs, which writes
//! docs/benchmarks-web.md. `--check` runs only the outputs-equal step (no timing, no markdown; in
//! target/bench-onnx-check);
//! `--cases a,b` picks cases (demo-layer, vits-layer, soft-moe-vit); `--rounds N` (default 3);
//! `--batches` and `--impls` go to run.mjs.

use std::path::PathBuf;
use std::process::Command;

use crate::setup::{apt_install, root, succeeds};

/// Versions bench/onnx/make_graphs.py was written and checked with.
const PYTHON_PACKAGES: [&str; 2] = ["onnx==1.23.2", "numpy==2.4.6"];

fn venv_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SOFTMOE_ONNX_VENV") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    home.join(".cache/softmoe/venv-onnx")
}

/// A venv with `onnx` and `numpy` of the pinned versions; returns its python.
fn python_venv() -> Result<PathBuf, String> {
    let dir = venv_dir();
    let python = dir.join("bin/python");
    let probe = format!(
        "import onnx, numpy, sys; sys.exit(0 if [onnx.__version__, numpy.__version__] == {:?} else 1)",
        PYTHON_PACKAGES.iter().map(|p| p.split("==").nth(1).unwrap_or_default()).collect::<Vec<_>>()
    );
    if succeeds(Command::new(&python).args(["-c", &probe])) {
        return Ok(python);
    }
    if !python.exists() {
        if !succeeds(Command::new("python3").args(["-c", "import venv, ensurepip"])) {
            apt_install(&["python3", "python3-venv"])?;
        }
        crate::run(Command::new("python3").args(["-m", "venv"]).arg(&dir))?;
    }
    crate::run(Command::new(&python).args(["-m", "pip", "install", "--quiet"]).args(PYTHON_PACKAGES))?;
    Ok(python)
}

/// Chromium, Node.js with npm, and bench/onnx's packages.
fn browser_and_packages() -> Result<PathBuf, String> {
    if !std::path::Path::new("/usr/bin/chromium").exists() {
        apt_install(&["chromium"])?;
    }
    if !succeeds(Command::new("npm").arg("--version")) {
        apt_install(&["nodejs", "npm"])?;
    }
    let dir = root().join("bench/onnx");
    let have = ["onnxruntime-web", "playwright-core"].iter().all(|p| dir.join("node_modules").join(p).exists());
    if !have {
        crate::run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir))?;
    }
    Ok(dir)
}

pub fn run(args: &[String]) -> Result<(), String> {
    let mut check = false;
    let mut cases: Option<String> = None;
    let mut rounds: Option<String> = None;
    let mut passed: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--check" => check = true,
            "--cases" => cases = Some(it.next().ok_or("--cases needs a value, e.g. demo-layer,soft-moe-vit")?.clone()),
            "--rounds" => rounds = Some(it.next().ok_or("--rounds needs a number")?.clone()),
            // Straight to run.mjs: batch sizes of the manifest, page.mjs implementation ids.
            flag @ ("--batches" | "--impls") => {
                passed.push(flag.to_string());
                passed.push(it.next().ok_or(format!("{flag} needs a value"))?.clone());
            }
            other => {
                return Err(format!(
                    "bench-web: unknown argument `{other}` (--check, --cases a,b, --rounds N, --batches 1,64, --impls id,id)"
                ))
            }
        }
    }
    let dir = browser_and_packages()?;
    let python = python_venv()?;
    crate::cargo(&["build", "--release", "--bin", "softmoe"])?;
    let package = crate::web::wasm()?;
    let root = root();
    // The check's own folder, so that it never replaces a timed run's graphs and results.
    let data = root.join(if check { "target/bench-onnx-check" } else { "target/bench-onnx" });
    let mut graphs = Command::new(&python);
    graphs
        .arg(dir.join("make_graphs.py"))
        .arg("--root")
        .arg(&root)
        .arg("--out")
        .arg(&data)
        .arg("--softmoe")
        .arg(root.join("target/release/softmoe"));
    if let Some(c) = &cases {
        graphs.args(["--only", c]);
    }
    crate::run(&mut graphs)?;
    let mut bench = Command::new("node");
    bench
        .arg("run.mjs")
        .arg("--data")
        .arg(&data)
        .arg("--softmoe")
        .arg(&package)
        .arg("--models")
        .arg(root.join("weights"))
        .current_dir(&dir);
    if check {
        bench.arg("--check");
    } else {
        bench.arg("--out").arg(root.join("docs/benchmarks-web.md"));
    }
    if let Some(r) = &rounds {
        bench.args(["--rounds", r]);
    }
    bench.args(&passed);
    crate::run(&mut bench)
}
