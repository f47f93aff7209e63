//! Turning image files into model input: PNG → grayscale, resized to the model's side, in [0, 1].

use std::path::Path;

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::weights::SafeTensors;

/// Decodes a PNG (any colour type) into `side`×`side` grayscale values in [0, 1].
pub fn png_to_gray(path: &Path, side: usize) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
        .map_err(|e| Error::input(path.display().to_string(), "a PNG image", format!("bytes that are not a readable PNG image ({e})")))?;
    let gray = img.to_luma8();
    let resized = image::imageops::resize(&gray, side as u32, side as u32, image::imageops::FilterType::Triangle);
    Ok(resized.pixels().map(|p| p.0[0] as f32 / 255.0).collect())
}

/// Reads `images` f32 [b, side, side] from a safetensors file, checking shape and range.
pub fn read_image_tensor(path: &Path, side: usize) -> Result<Tensor> {
    let st = SafeTensors::read(path)?;
    let t = st.tensor_f32("images")?;
    if t.shape.len() != 3 || t.shape[1] != side || t.shape[2] != side {
        return Err(Error::Shape {
            context: path.display().to_string(),
            name: "images".into(),
            found: t.shape,
            expected: format!("[b, {side}, {side}]"),
        });
    }
    check_pixels(&t.data, &path.display().to_string())?;
    Ok(t)
}

/// Pixels must be finite and in [0, 1], the range the models were trained on.
pub fn check_pixels(data: &[f32], context: &str) -> Result<()> {
    if let Some(i) = data.iter().position(|v| !v.is_finite() || !(0.0..=1.0).contains(v)) {
        return Err(Error::input(context, "pixels in [0, 1]", format!("pixel {i} is {}", data[i])));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::png_to_gray;

    fn save(name: &str, img: impl FnOnce(&std::path::Path)) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("softmoe-images-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        img(&path);
        path
    }

    /// Rec. 709 luma (what `to_luma8` computes), here in f64.
    fn luma(r: u8, g: u8, b: u8) -> f64 {
        0.2126 * r as f64 + 0.7152 * g as f64 + 0.0722 * b as f64
    }

    #[test]
    fn gray_pixels_at_the_models_size_come_through_exactly_in_every_png_layout() {
        let value = |x: u32, y: u32| ((x * 37 + y * 91) % 256) as u8;
        let want: Vec<f32> = (0..28).flat_map(|y| (0..28).map(move |x| value(x, y) as f32 / 255.0)).collect();
        let rgb = save("gray-rgb.png", |p| image::RgbImage::from_fn(28, 28, |x, y| image::Rgb([value(x, y); 3])).save(p).unwrap());
        let rgba = save("gray-rgba.png", |p| {
            image::RgbaImage::from_fn(28, 28, |x, y| image::Rgba([value(x, y), value(x, y), value(x, y), 255])).save(p).unwrap()
        });
        let luma8 = save("gray-l8.png", |p| image::GrayImage::from_fn(28, 28, |x, y| image::Luma([value(x, y)])).save(p).unwrap());
        for path in [rgb, rgba, luma8] {
            assert_eq!(png_to_gray(&path, 28).unwrap(), want, "{}", path.display());
        }
    }

    #[test]
    fn colours_become_their_luma() {
        let colours = [[255u8, 0, 0], [0, 255, 0], [0, 0, 255], [200, 180, 160], [13, 250, 77]];
        let path = save("colours.png", |p| image::RgbImage::from_fn(28, 28, |x, _| image::Rgb(colours[x as usize % 5])).save(p).unwrap());
        let got = png_to_gray(&path, 28).unwrap();
        for (x, &v) in got[..28].iter().enumerate() {
            let [r, g, b] = colours[x % 5];
            // to_luma8 rounds to a whole level: within half a level of the exact luma.
            assert!((v as f64 * 255.0 - luma(r, g, b)).abs() <= 0.5 + 1e-9, "column {x}: {v} for {:?}", colours[x % 5]);
        }
        // The pure colours are told apart: red, green and blue have distinct lumas.
        assert!(got[0] < got[1] && got[2] < got[0], "{:?}", &got[..3]);
    }

    #[test]
    fn a_larger_picture_is_resized_to_the_models_side() {
        // 56×70 with a bright rectangle over x 10..46, y 8..60: at 28×28 the rectangle covers
        // x 5..23 (×0.5) and y 3.2..24 (×0.4); pixels away from its edges are exact.
        let inside = [200u8, 180, 160];
        let path = save("rect.png", |p| {
            image::RgbImage::from_fn(56, 70, |x, y| {
                if (10..46).contains(&x) && (8..60).contains(&y) {
                    image::Rgb(inside)
                } else {
                    image::Rgb([0, 0, 0])
                }
            })
            .save(p)
            .unwrap()
        });
        let got = png_to_gray(&path, 28).unwrap();
        assert_eq!(got.len(), 28 * 28);
        let bright = (luma(inside[0], inside[1], inside[2]) / 255.0) as f32;
        for y in 0..28 {
            for x in 0..28 {
                let v = got[y * 28 + x];
                if (7..21).contains(&x) && (5..22).contains(&y) {
                    assert!((v - bright).abs() <= 1.0 / 255.0, "({x}, {y}) inside: {v} vs {bright}");
                } else if !(3..25).contains(&x) || !(1..26).contains(&y) {
                    assert_eq!(v, 0.0, "({x}, {y}) outside");
                }
            }
        }
        // Resizing keeps the picture's brightness: the rectangle covers 36·52 of 56·70 pixels.
        let mean = got.iter().map(|&v| v as f64).sum::<f64>() / 784.0;
        let want = bright as f64 * (36.0 * 52.0) / (56.0 * 70.0);
        assert!((mean - want).abs() < 0.02 * want, "mean {mean} vs {want}");
    }

    #[test]
    fn a_file_that_is_not_a_png_is_named() {
        let path = save("fake.png", |p| std::fs::write(p, b"GIF89a").unwrap());
        let e = png_to_gray(&path, 28).unwrap_err().to_string();
        assert!(e.contains("fake.png") && e.contains("not a readable PNG"), "{e}");
    }
}
