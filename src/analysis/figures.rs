//! The PNG figures of an `analyze` report, drawn from its JSON (so any report file can be redrawn):
//! per block, the slots' mean dispatch maps, the entropy histograms, the class × slot heat map and
//! the two slot-similarity matrices.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::canvas::{diverging, sequential, Canvas, BLACK, GREY};
use crate::error::{Error, Result};

fn field<'a>(v: &'a Value, key: &str) -> Result<&'a Value> {
    v.get(key).ok_or_else(|| Error::input(format!("the report's `{key}`"), "present", "missing"))
}

fn num(v: &Value, key: &str) -> Result<f64> {
    field(v, key)?
        .as_f64()
        .ok_or_else(|| Error::input(format!("the report's `{key}`"), "a number", field(v, key).map(|x| x.to_string()).unwrap_or_default()))
}

fn nums(v: &Value, key: &str) -> Result<Vec<f64>> {
    let a = field(v, key)?.as_array().ok_or_else(|| Error::input(format!("the report's `{key}`"), "an array", "something else"))?;
    a.iter().map(|x| x.as_f64().ok_or_else(|| Error::input(format!("the report's `{key}`"), "an array of numbers", x))).collect()
}

fn rows(v: &Value, key: &str) -> Result<Vec<Vec<f64>>> {
    let a = field(v, key)?.as_array().ok_or_else(|| Error::input(format!("the report's `{key}`"), "an array", "something else"))?;
    a.iter()
        .map(|r| {
            r.as_array()
                .ok_or_else(|| Error::input(format!("the report's `{key}`"), "an array of arrays", r))?
                .iter()
                .map(|x| x.as_f64().ok_or_else(|| Error::input(format!("the report's `{key}`"), "numbers", x)))
                .collect()
        })
        .collect()
}

/// Writes every figure of `report` into `dir`; returns their paths.
pub fn write_all(report: &Value, dir: &Path) -> Result<Vec<PathBuf>> {
    let grid = num(report, "grid")? as usize;
    let class_token = field(report, "class_token")?.as_bool().unwrap_or(false);
    let classes: Vec<String> =
        field(report, "classes")?.as_array().into_iter().flatten().map(|c| c.as_str().unwrap_or("?").to_string()).collect();
    let mut written = Vec::new();
    for block in field(report, "blocks")?.as_array().into_iter().flatten() {
        let b = num(block, "block")? as usize;
        let mut save = |name: &str, c: Canvas| -> Result<()> {
            let path = dir.join(format!("{name}_block{b}.png"));
            c.save(&path)?;
            written.push(path);
            Ok(())
        };
        save("slot_maps", slot_maps(block, b, grid, class_token)?)?;
        save("entropy", entropy_histograms(block, b)?)?;
        save("class_slot", class_slot(block, b, &classes)?)?;
        save("similarity", similarity(block, b)?)?;
    }
    Ok(written)
}

/// Each slot's mean dispatch map over the patch grid, normalised to its own maximum.
pub fn slot_maps(block: &Value, b: usize, grid: usize, class_token: bool) -> Result<Canvas> {
    let slots = field(block, "slots")?.as_array().cloned().unwrap_or_default();
    let cols = slots.len().clamp(1, 8);
    let rows = slots.len().div_ceil(cols);
    let cell = (84 / grid.max(1)).max(2) as i64;
    let tile = cell * grid as i64;
    let (pad, label) = (12i64, 14i64);
    let w = pad + cols as i64 * (tile + pad);
    let h = 28 + rows as i64 * (tile + label + pad);
    let mut c = Canvas::new(w as u32, h as u32);
    c.text(pad, 8, &format!("BLOCK {b}: MEAN DISPATCH MAP PER SLOT (EACH SCALED TO ITS MAX)"), 2, BLACK);
    for (k, slot) in slots.iter().enumerate() {
        let map = nums(slot, "mean_dispatch")?;
        let patches = &map[usize::from(class_token)..];
        let max = patches.iter().copied().fold(0.0, f64::max);
        let (x0, y0) = (pad + (k % cols) as i64 * (tile + pad), 28 + (k / cols) as i64 * (tile + label + pad));
        c.text(x0, y0, &format!("S{} E{}", num(slot, "slot")?, num(slot, "expert")?), 2, BLACK);
        for (i, &v) in patches.iter().enumerate().take(grid * grid) {
            let t = if max > 0.0 { v / max } else { 0.0 };
            c.rect(x0 + (i % grid) as i64 * cell, y0 + label + (i / grid) as i64 * cell, cell, cell, sequential(t));
        }
    }
    Ok(c)
}

/// One histogram per slot of its dispatch entropy over images, and the tokens' combine entropy.
pub fn entropy_histograms(block: &Value, b: usize) -> Result<Canvas> {
    let mut panels: Vec<(String, Value)> = Vec::new();
    for slot in field(block, "slots")?.as_array().into_iter().flatten() {
        panels.push((format!("S{} D ENTROPY", num(slot, "slot")?), field(slot, "dispatch_entropy")?.clone()));
    }
    panels.push(("TOKENS C ENTROPY".into(), field(field(block, "tokens")?, "combine_entropy")?.clone()));
    let cols = panels.len().clamp(1, 6);
    let rows = panels.len().div_ceil(cols);
    let (pw, ph, pad) = (150i64, 90i64, 14i64);
    let mut c = Canvas::new((pad + cols as i64 * (pw + pad)) as u32, (30 + rows as i64 * (ph + 40)) as u32);
    c.text(pad, 8, &format!("BLOCK {b}: ENTROPY OVER IMAGES, NATS (X: RANGE OVER THE BLOCK, RED = MEDIAN)"), 2, BLACK);
    for (k, (name, d)) in panels.iter().enumerate() {
        let (x0, y0) = (pad + (k % cols) as i64 * (pw + pad), 30 + (k / cols) as i64 * (ph + 40));
        let z = field(d, "zoom")?;
        let counts = nums(z, "counts")?;
        let (lo, hi) = (num(z, "lo")?, num(z, "hi")?);
        let median = nums(d, "quantiles")?.get(2).copied().unwrap_or(lo);
        let top = counts.iter().copied().fold(1.0, f64::max);
        c.text(x0, y0, name, 2, BLACK);
        let (bx, by, bh) = (x0, y0 + 14, ph - 14);
        let bw = pw / counts.len().max(1) as i64;
        for (i, &n) in counts.iter().enumerate() {
            let hgt = (n / top * bh as f64).round() as i64;
            c.rect(bx + i as i64 * bw, by + bh - hgt, bw - 1, hgt, sequential(0.35));
        }
        c.rect(bx, by + bh, bw * counts.len() as i64, 1, BLACK);
        let mx = bx + ((median - lo) / (hi - lo).max(1e-12) * (bw * counts.len() as i64) as f64).round() as i64;
        c.rect(mx, by, 2, bh, [200, 40, 40]);
        c.text(bx, by + bh + 4, &format!("{lo:.2}"), 2, GREY);
        let hi_s = format!("{hi:.2}");
        c.text(bx + bw * counts.len() as i64 - Canvas::text_width(&hi_s, 2), by + bh + 4, &hi_s, 2, GREY);
    }
    Ok(c)
}

/// Classes × slots: the mean combine mass an image of the class reads from the slot.
pub fn class_slot(block: &Value, b: usize, classes: &[String]) -> Result<Canvas> {
    let m = rows(block, "class_slot_combine_mass")?;
    let s = m.first().map_or(0, Vec::len);
    let (cell, left, topm) = (28i64, 130i64, 44i64);
    let mut c = Canvas::new((left + s as i64 * cell + 20).max(560) as u32, (topm + m.len() as i64 * cell + 30) as u32);
    let max = m.iter().flatten().copied().fold(0.0, f64::max);
    c.text(10, 8, &format!("BLOCK {b}: COMBINE MASS PER CLASS AND SLOT (MAX {max:.2})"), 2, BLACK);
    for j in 0..s {
        c.text(left + j as i64 * cell + 4, topm - 14, &j.to_string(), 2, BLACK);
    }
    for (k, r) in m.iter().enumerate() {
        let name: String = classes.get(k).map_or(k.to_string(), |n| n.chars().take(11).collect());
        c.text(6, topm + k as i64 * cell + 9, &name, 2, BLACK);
        for (j, &v) in r.iter().enumerate() {
            c.rect(left + j as i64 * cell, topm + k as i64 * cell, cell - 1, cell - 1, sequential(if max > 0.0 { v / max } else { 0.0 }));
        }
    }
    c.text(left, topm + m.len() as i64 * cell + 8, "SLOT ACROSS, CLASS DOWN", 2, GREY);
    Ok(c)
}

/// The cosine similarity of the slots' Φ̂ columns and of their mean dispatch maps, side by side.
pub fn similarity(block: &Value, b: usize) -> Result<Canvas> {
    let sim = field(block, "similarity")?;
    let mats = [
        ("PHI COLUMNS", rows(sim, "phi")?),
        ("MEAN DISPATCH MAPS", rows(sim, "dispatch")?),
        ("MAPS MINUS 1/M", rows(sim, "dispatch_centered")?),
    ];
    let s = mats[0].1.len() as i64;
    let cell = (240 / s.max(1)).max(4);
    let (pad, topm) = (20i64, 50i64);
    let mut c = Canvas::new((pad + mats.len() as i64 * (s * cell + pad)).max(640) as u32, (topm + s * cell + 20) as u32);
    c.text(pad, 8, &format!("BLOCK {b}: SLOT COSINE SIMILARITY (BLUE -1, WHITE 0, RED +1)"), 2, BLACK);
    for (k, (name, m)) in mats.iter().enumerate() {
        let x0 = pad + k as i64 * (s * cell + pad);
        c.text(x0, topm - 16, name, 2, BLACK);
        for (a, r) in m.iter().enumerate() {
            for (bb, &v) in r.iter().enumerate() {
                c.rect(x0 + bb as i64 * cell, topm + a as i64 * cell, cell, cell, diverging(v));
            }
        }
        c.frame(x0 - 1, topm - 1, s * cell + 2, s * cell + 2, GREY);
    }
    Ok(c)
}
