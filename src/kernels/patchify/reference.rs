//! `patchify` in f64.

use crate::config::VitConfig;

/// Images [b, H, W, C] → patch rows [b·m, P·P·C], tokens row-major over the grid, (py, px, c) inside.
pub fn patchify(images: &[f64], b: usize, c: &VitConfig) -> Vec<f64> {
    let (s, p, ch, g) = (c.image_size, c.patch_size, c.channels, c.grid());
    let mut out = Vec::with_capacity(b * c.tokens() * c.patch_dim());
    for e in 0..b {
        for gy in 0..g {
            for gx in 0..g {
                for py in 0..p {
                    for px in 0..p {
                        for k in 0..ch {
                            out.push(images[((e * s + gy * p + py) * s + gx * p + px) * ch + k]);
                        }
                    }
                }
            }
        }
    }
    out
}
