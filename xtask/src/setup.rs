//! Installing what the commands need: rustup components, Debian packages.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask sits inside the workspace").to_path_buf()
}

pub fn succeeds(cmd: &mut Command) -> bool {
    cmd.output().map(|o| o.status.success()).unwrap_or(false)
}

/// Adds rustup components that are missing.
pub fn rust_components(names: &[&str]) -> Result<(), String> {
    for name in names {
        let probe = if *name == "clippy" { "clippy-driver" } else { name };
        if !succeeds(Command::new(probe).arg("--version")) {
            crate::run(Command::new("rustup").args(["component", "add", name]))?;
        }
    }
    Ok(())
}

/// Installs Debian packages with apt-get (as root), or says what to install.
pub fn apt_install(packages: &[&str]) -> Result<(), String> {
    let root = succeeds(Command::new("sh").args(["-c", "[ \"$(id -u)\" = 0 ]"]));
    if !root || !succeeds(Command::new("apt-get").arg("--version")) {
        return Err(format!("please install the packages {packages:?} (needs apt-get as root)"));
    }
    crate::run(Command::new("apt-get").args(["update", "-qq"]))?;
    crate::run(Command::new("apt-get").args(["install", "-y", "-qq"]).args(packages).env("DEBIAN_FRONTEND", "noninteractive"))
}

/// Makes sure a GPU adapter answers: builds `softmoe` and runs `softmoe info`, which creates a
/// device. When none answers (no driver, or a driver file without a working device behind it),
/// installs Mesa's lavapipe (a software GPU) and asks again; still none is an error.
pub fn gpu_adapter() -> Result<(), String> {
    crate::cargo(&["build", "--release", "--bin", "softmoe"])?;
    let info = || Command::new(root().join("target/release/softmoe")).arg("info").output();
    if let Ok(out) = info() {
        if out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout);
            eprintln!("xtask: GPU adapter: {}", text.lines().next().unwrap_or_default());
            return Ok(());
        }
    }
    eprintln!("xtask: no GPU adapter answers; installing Mesa's lavapipe (mesa-vulkan-drivers)");
    apt_install(&["mesa-vulkan-drivers"])?;
    match info() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(format!("still no GPU adapter after installing lavapipe: {}", String::from_utf8_lossy(&out.stderr).trim())),
        Err(e) => Err(format!("softmoe info: {e}")),
    }
}
