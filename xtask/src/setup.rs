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

/// Makes sure a Vulkan driver is installed; Mesa's lavapipe (a software GPU) when there is none.
pub fn vulkan_driver() -> Result<(), String> {
    let has_icd = ["/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d"].iter().any(|d| {
        std::fs::read_dir(d).map(|entries| entries.flatten().any(|e| e.path().extension().is_some_and(|x| x == "json"))).unwrap_or(false)
    });
    if has_icd {
        Ok(())
    } else {
        eprintln!("xtask: no Vulkan driver found; installing Mesa's lavapipe (mesa-vulkan-drivers)");
        apt_install(&["mesa-vulkan-drivers"])
    }
}
