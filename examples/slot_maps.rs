//! Slot maps in the style of the paper's Fig. 25 (SPEC §4) for one sample image, as a PNG:
//! the image; every slot's dispatch weights D[:, j] over the patch grid (scaled per slot, min to max),
//! labelled with its expert; the combine map (the expert each patch's output mostly comes from,
//! brighter where that expert's combine mass is larger); and the experts' importance.
//!
//! cargo run --release --example slot_maps -- [MODEL_DIR] [SAMPLE_INDEX] [OUT.png] [BLOCK]

use image::{Rgb, RgbImage};
use softmoe::model::Vit;
use softmoe::weights::VitWeights;
use softmoe::{GpuContext, SafeTensors, Tensor};

const CELL: u32 = 12;
const PAD: u32 = 10;
const LABEL: u32 = 14;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = args.first().map_or("weights/soft-moe-vit", String::as_str);
    let index: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(0);
    let out_path = args.get(2).map_or("slot_maps.png", String::as_str);
    let weights = VitWeights::load(model)?;
    let c = weights.config.clone();
    let samples = SafeTensors::read("weights/samples.safetensors")?;
    let images = samples.tensor_f32("images")?;
    let labels = samples.tensor_f32("labels")?;
    let side = c.image_size;
    if index >= images.shape[0] {
        return Err(format!("sample {index} out of range (0..{})", images.shape[0]).into());
    }
    let pixels = images.data[index * side * side..(index + 1) * side * side].to_vec();
    let ctx = pollster::block_on(GpuContext::new())?;
    let vit = pollster::block_on(Vit::new(ctx, &weights))?;
    let out = pollster::block_on(vit.classify_with_maps(&Tensor::new(vec![1, side, side], pixels.clone())?))?;
    let block = match args.get(3) {
        Some(b) => b.parse()?,
        None => out.maps.last().ok_or("the model has no Soft MoE block")?.block,
    };
    let maps = out.maps.iter().find(|m| m.block == block).ok_or(format!("block {block} is not a Soft MoE block"))?;
    let (g, n, p) = (c.grid(), c.num_experts, c.slots_per_expert);
    let (m, s) = (g * g, n * p);
    // The patch tokens' rows (a class token, with classifier `token`, is row 0 and not drawn).
    let first = c.seq_len() - m;
    let d = &maps.dispatch.data[first * s..];
    let cm = &maps.combine.data[first * s..];

    let tile = g as u32 * CELL;
    let cols = (s as u32).clamp(1, 8);
    let rows = (s as u32).div_ceil(cols);
    let width = PAD + (cols + 2) * (tile + PAD);
    let height = PAD + (rows.max(2)) * (tile + PAD + LABEL) + 40;
    let mut img = RgbImage::from_pixel(width, height, Rgb([255, 255, 255]));

    // The input image and, below it, the combine map.
    draw_grid(&mut img, PAD, PAD + LABEL, side, side, tile, |y, x| gray(pixels[y * side + x]));
    text(&mut img, PAD, PAD, &c.class_name(labels.data[index] as usize), Rgb([0, 0, 0]));
    let per_patch: Vec<(usize, f32)> = (0..m)
        .map(|t| {
            let mass: Vec<f32> = (0..n).map(|e| cm[t * s + e * p..t * s + (e + 1) * p].iter().sum()).collect();
            let e = (0..n).fold(0, |b, e| if mass[e] > mass[b] { e } else { b });
            (e, mass[e])
        })
        .collect();
    let y0 = PAD + LABEL + tile + PAD + LABEL;
    text(&mut img, PAD, y0 - LABEL, "combine", Rgb([0, 0, 0]));
    // Opacity: the dominant expert's combine mass, relative to the largest over the patches.
    let top = per_patch.iter().map(|p| p.1).fold(f32::MIN_POSITIVE, f32::max);
    draw_grid(&mut img, PAD, y0, g, g, tile, |y, x| {
        let (e, w) = per_patch[y * g + x];
        let c = expert_colour(e, n);
        let a = (0.25 + 0.75 * w / top).clamp(0.0, 1.0);
        Rgb([
            (255.0 * (1.0 - a) + c[0] as f32 * a) as u8,
            (255.0 * (1.0 - a) + c[1] as f32 * a) as u8,
            (255.0 * (1.0 - a) + c[2] as f32 * a) as u8,
        ])
    });

    // One heat map per slot, scaled from its own smallest to its largest weight, labelled "e<expert> s<slot>".
    for j in 0..s {
        let (col, row) = (j as u32 % cols, j as u32 / cols);
        let x0 = PAD + (col + 1) * (tile + PAD);
        let y0 = PAD + LABEL + row * (tile + PAD + LABEL);
        let column: Vec<f32> = (0..m).map(|t| d[t * s + j]).collect();
        let max = column.iter().copied().fold(f32::MIN, f32::max);
        let min = column.iter().copied().fold(f32::MAX, f32::min);
        draw_grid(&mut img, x0, y0, g, g, tile, |y, x| viridis((column[y * g + x] - min) / (max - min).max(1e-12)));
        text(&mut img, x0, y0 - LABEL, &format!("e{} s{}", j / p, j % p), expert_colour(j / p, n));
    }

    // Expert importance: combine mass per expert, summed over patches, as bars.
    let importance: Vec<f32> = (0..n).map(|e| (0..m).map(|t| cm[t * s + e * p..t * s + (e + 1) * p].iter().sum::<f32>()).sum()).collect();
    let total: f32 = importance.iter().sum();
    let bx = PAD + (cols + 1) * (tile + PAD);
    let bar_w = (tile / n as u32).max(2);
    let base = PAD + LABEL + tile;
    text(&mut img, bx, PAD, "experts", Rgb([0, 0, 0]));
    for (e, &v) in importance.iter().enumerate() {
        let h = (v / total * tile as f32 * 2.0).min(tile as f32) as u32;
        for y in base.saturating_sub(h)..base {
            for x in bx + e as u32 * bar_w..bx + (e as u32 + 1) * bar_w - 1 {
                img.put_pixel(x, y, expert_colour(e, n));
            }
        }
    }
    let caption =
        format!("block {block}: predicted {} ({:.0}%)", c.class_name(out.predictions[0]), 100.0 * out.probs.data[out.predictions[0]]);
    text(&mut img, PAD, height - 24, &caption, Rgb([0, 0, 0]));
    img.save(out_path)?;
    println!("wrote {out_path}: {caption}");
    Ok(())
}

fn gray(v: f32) -> Rgb<u8> {
    let u = (v.clamp(0.0, 1.0) * 255.0) as u8;
    Rgb([u, u, u])
}

/// Fills a `rows`×`cols` grid of cells at (x0, y0), `size` pixels in all.
fn draw_grid(img: &mut RgbImage, x0: u32, y0: u32, rows: usize, cols: usize, size: u32, colour: impl Fn(usize, usize) -> Rgb<u8>) {
    for py in 0..size {
        for px in 0..size {
            let (y, x) = ((py as usize * rows) / size as usize, (px as usize * cols) / size as usize);
            img.put_pixel(x0 + px, y0 + py, colour(y, x));
        }
    }
}

/// Viridis, from five of its stops, for v in [0, 1].
fn viridis(v: f32) -> Rgb<u8> {
    const STOPS: [[f32; 3]; 5] = [[68.0, 1.0, 84.0], [59.0, 82.0, 139.0], [33.0, 145.0, 140.0], [94.0, 201.0, 98.0], [253.0, 231.0, 37.0]];
    let t = v.clamp(0.0, 1.0) * 4.0;
    let i = (t.floor() as usize).min(3);
    let f = t - i as f32;
    let c = |k: usize| (STOPS[i][k] + (STOPS[i + 1][k] - STOPS[i][k]) * f) as u8;
    Rgb([c(0), c(1), c(2)])
}

/// A distinct hue per expert.
fn expert_colour(e: usize, n: usize) -> Rgb<u8> {
    let h = e as f32 / n.max(1) as f32 * 6.0;
    let x = 1.0 - (h % 2.0 - 1.0).abs();
    let (r, g, b) = match h as u32 {
        0 => (1.0, x, 0.0),
        1 => (x, 1.0, 0.0),
        2 => (0.0, 1.0, x),
        3 => (0.0, x, 1.0),
        4 => (x, 0.0, 1.0),
        _ => (1.0, 0.0, x),
    };
    Rgb([(r * 200.0) as u8, (g * 200.0) as u8, (b * 200.0) as u8])
}

/// Draws text in a 3×5 pixel font, doubled (digits, lowercase letters used here, a few signs).
fn text(img: &mut RgbImage, x0: u32, y0: u32, s: &str, colour: Rgb<u8>) {
    let mut x = x0;
    for ch in s.chars() {
        let rows = glyph(ch);
        for (r, bits) in rows.iter().enumerate() {
            for c in 0..3 {
                if bits & (0b100 >> c) != 0 {
                    for dy in 0..2 {
                        for dx in 0..2 {
                            let (px, py) = (x + c * 2 + dx, y0 + r as u32 * 2 + dy);
                            if px < img.width() && py < img.height() {
                                img.put_pixel(px, py, colour);
                            }
                        }
                    }
                }
            }
        }
        x += 8;
    }
}

fn glyph(ch: char) -> [u8; 5] {
    match ch.to_ascii_lowercase() {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        'a' => [2, 5, 7, 5, 5],
        'b' => [6, 5, 6, 5, 6],
        'c' => [3, 4, 4, 4, 3],
        'd' => [6, 5, 5, 5, 6],
        'e' => [7, 4, 6, 4, 7],
        'f' => [7, 4, 6, 4, 4],
        'g' => [3, 4, 5, 5, 3],
        'h' => [5, 5, 7, 5, 5],
        'i' => [7, 2, 2, 2, 7],
        'j' => [1, 1, 1, 5, 2],
        'k' => [5, 5, 6, 5, 5],
        'l' => [4, 4, 4, 4, 7],
        'm' => [5, 7, 7, 5, 5],
        'n' => [6, 5, 5, 5, 5],
        'o' => [2, 5, 5, 5, 2],
        'p' => [6, 5, 6, 4, 4],
        'q' => [2, 5, 5, 6, 3],
        'r' => [6, 5, 6, 5, 5],
        's' => [3, 4, 2, 1, 6],
        't' => [7, 2, 2, 2, 2],
        'u' => [5, 5, 5, 5, 7],
        'v' => [5, 5, 5, 5, 2],
        'w' => [5, 5, 7, 7, 5],
        'x' => [5, 5, 2, 5, 5],
        'y' => [5, 5, 2, 2, 2],
        'z' => [7, 1, 2, 4, 7],
        ':' => [0, 2, 0, 2, 0],
        '(' => [1, 2, 2, 2, 1],
        ')' => [4, 2, 2, 2, 4],
        '%' => [5, 1, 2, 4, 5],
        '/' => [1, 1, 2, 4, 4],
        '-' => [0, 0, 7, 0, 0],
        '.' => [0, 0, 0, 0, 2],
        _ => [0, 0, 0, 0, 0],
    }
}
