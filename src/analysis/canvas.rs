//! A small RGB raster for the PNG figures of `analyze` and `explore`: rectangles, lines, labels.

use std::path::Path;

use image::{Rgb, RgbImage};

use super::font::glyph;
use crate::error::{Error, Result};

pub type Color = [u8; 3];
pub const WHITE: Color = [255, 255, 255];
pub const BLACK: Color = [0, 0, 0];
pub const GREY: Color = [160, 160, 160];

pub struct Canvas {
    pub img: RgbImage,
}

/// Viridis-like colour of t in [0, 1] (five stops, linear between them).
pub fn sequential(t: f64) -> Color {
    const STOPS: [Color; 5] = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
    interpolate(&STOPS, t)
}

/// Blue (−1) – white (0) – red (+1), for cosine similarities.
pub fn diverging(t: f64) -> Color {
    interpolate(&[[49, 54, 149], [255, 255, 255], [165, 0, 38]], (t + 1.0) / 2.0)
}

fn interpolate(stops: &[Color], t: f64) -> Color {
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let x = t * (stops.len() - 1) as f64;
    let i = (x.floor() as usize).min(stops.len() - 2);
    let f = x - i as f64;
    let mix = |a: u8, b: u8| (f64::from(a) + f * (f64::from(b) - f64::from(a))).round() as u8;
    [mix(stops[i][0], stops[i + 1][0]), mix(stops[i][1], stops[i + 1][1]), mix(stops[i][2], stops[i + 1][2])]
}

impl Canvas {
    pub fn new(w: u32, h: u32) -> Self {
        Canvas { img: RgbImage::from_pixel(w, h, Rgb(WHITE)) }
    }

    pub fn rect(&mut self, x: i64, y: i64, w: i64, h: i64, c: Color) {
        for yy in y.max(0)..(y + h).min(i64::from(self.img.height())) {
            for xx in x.max(0)..(x + w).min(i64::from(self.img.width())) {
                self.img.put_pixel(xx as u32, yy as u32, Rgb(c));
            }
        }
    }

    /// A one-pixel outline.
    pub fn frame(&mut self, x: i64, y: i64, w: i64, h: i64, c: Color) {
        self.rect(x, y, w, 1, c);
        self.rect(x, y + h - 1, w, 1, c);
        self.rect(x, y, 1, h, c);
        self.rect(x + w - 1, y, 1, h, c);
    }

    /// A line `t` pixels thick from (x0, y0) to (x1, y1).
    pub fn line(&mut self, (x0, y0): (f64, f64), (x1, y1): (f64, f64), t: i64, c: Color) {
        let steps = (x1 - x0).abs().max((y1 - y0).abs()).ceil().max(1.0) as usize;
        for k in 0..=steps {
            let f = k as f64 / steps as f64;
            let (x, y) = (x0 + f * (x1 - x0), y0 + f * (y1 - y0));
            self.rect(x.round() as i64 - t / 2, y.round() as i64 - t / 2, t, t, c);
        }
    }

    /// Text with its top-left corner at (x, y), each font pixel `scale` pixels wide; returns its width.
    pub fn text(&mut self, x: i64, y: i64, s: &str, scale: i64, c: Color) -> i64 {
        for (k, ch) in s.chars().enumerate() {
            let g = glyph(ch);
            for (row, bits) in g.iter().enumerate() {
                for col in 0..3 {
                    if bits & (4 >> col) != 0 {
                        self.rect(x + (k as i64 * 4 + col) * scale, y + row as i64 * scale, scale, scale, c);
                    }
                }
            }
        }
        Self::text_width(s, scale)
    }

    pub fn text_width(s: &str, scale: i64) -> i64 {
        (s.chars().count() as i64 * 4 - 1).max(0) * scale
    }

    /// Writes the PNG through a temporary file and a rename.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut bytes = Vec::new();
        self.img
            .write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)
            .map_err(|e| Error::Internal(format!("encoding {}: {e}", path.display())))?;
        crate::weights::safetensors::write_atomic(path, &bytes)
    }
}
