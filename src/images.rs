//! Turning image files into model input: PNG → grayscale, resized to the model's side, in [0, 1].

use std::path::Path;

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::weights::SafeTensors;

/// Decodes a PNG (any colour type) into `side`×`side` grayscale values in [0, 1].
pub fn png_to_gray(path: &Path, side: usize) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
        .map_err(|e| Error::Input(format!("{}: not a readable PNG image: {e}", path.display())))?;
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
        return Err(Error::Input(format!("{context}: pixel {i} is {}, outside [0, 1]", data[i])));
    }
    Ok(())
}
