//! explore.png: the layer's time against total slots n·p (one line per parameter budget) and
//! against the number of experts n (one line per total slot count), both axes log2.

use softmoe::analysis::canvas::{Canvas, Color, BLACK, GREY};

use super::explore::{Budget, Point};

const COLORS: [Color; 6] = [[52, 81, 209], [200, 60, 60], [40, 150, 80], [230, 140, 40], [130, 60, 170], [90, 90, 90]];

/// One panel: series of (x, ms) drawn on log2 axes in the rectangle at (x0, y0).
fn panel(c: &mut Canvas, at: (i64, i64), title: &str, xlabel: &str, series: &[(String, Vec<(f64, f64)>)]) {
    let (x0, y0, w, h) = (at.0 + 60, at.1 + 30, 380i64, 260i64);
    c.text(at.0, at.1, title, 2, BLACK);
    let pts: Vec<(f64, f64)> = series.iter().flat_map(|(_, v)| v.iter().copied()).collect();
    if pts.is_empty() {
        return;
    }
    let lx = |v: f64| v.log2();
    let (xmin, xmax) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(lx(p.0)), b.max(lx(p.0))));
    let (ymin, ymax) = pts.iter().fold((f64::MAX, f64::MIN), |(a, b), p| (a.min(lx(p.1)), b.max(lx(p.1))));
    let (xmin, xmax) = (xmin.floor(), xmax.ceil().max(xmin.floor() + 1.0));
    let (ymin, ymax) = (ymin.floor(), ymax.ceil().max(ymin.floor() + 1.0));
    let px = |v: f64| x0 as f64 + (lx(v) - xmin) / (xmax - xmin) * w as f64;
    let py = |v: f64| (y0 + h) as f64 - (lx(v) - ymin) / (ymax - ymin) * h as f64;
    c.frame(x0, y0, w, h, GREY);
    for k in xmin as i64..=xmax as i64 {
        let x = px(2f64.powi(k as i32)).round() as i64;
        c.rect(x, y0 + h, 1, 5, BLACK);
        let s = format!("{}", 1u64 << k.max(0));
        c.text(x - Canvas::text_width(&s, 2) / 2, y0 + h + 8, &s, 2, BLACK);
    }
    for k in ymin as i64..=ymax as i64 {
        let v = 2f64.powi(k as i32);
        let y = py(v).round() as i64;
        c.rect(x0 - 5, y, 5, 1, BLACK);
        let s = if v >= 1.0 { format!("{v:.0}") } else { format!("{v}") };
        c.text(x0 - 8 - Canvas::text_width(&s, 2), y - 5, &s, 2, BLACK);
    }
    c.text(x0 + w / 2 - Canvas::text_width(xlabel, 2) / 2, y0 + h + 24, xlabel, 2, BLACK);
    c.text(at.0, y0 - 14, "MS", 2, BLACK);
    for (k, (name, v)) in series.iter().enumerate() {
        let col = COLORS[k % COLORS.len()];
        for pair in v.windows(2) {
            c.line((px(pair[0].0), py(pair[0].1)), (px(pair[1].0), py(pair[1].1)), 2, col);
        }
        for &(x, y) in v {
            c.rect(px(x).round() as i64 - 3, py(y).round() as i64 - 3, 7, 7, col);
        }
        c.rect(x0 + 8, y0 + 8 + k as i64 * 14, 10, 10, col);
        c.text(x0 + 24, y0 + 9 + k as i64 * 14, name, 2, col);
    }
}

pub fn draw(points: &[Point], title: &str) -> Canvas {
    let mut c = Canvas::new(1000, 390);
    c.text(10, 8, title, 2, BLACK);
    let mut by_experts: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    let mut by_slots: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for q in points.iter().filter(|q| q.secs.is_finite()) {
        let (list, name, x) = match q.budget {
            Budget::Experts(n) => (&mut by_experts, format!("N={n}"), (q.n * q.p) as f64),
            Budget::Slots(s) => (&mut by_slots, format!("N*P={s}"), q.n as f64),
        };
        match list.iter_mut().find(|(l, _)| *l == name) {
            Some((_, v)) => v.push((x, q.secs * 1e3)),
            None => list.push((name, vec![(x, q.secs * 1e3)])),
        }
    }
    panel(&mut c, (10, 34), "FIXED PARAMETERS: TIME AGAINST N*P", "TOTAL SLOTS N*P", &by_experts);
    panel(&mut c, (510, 34), "FIXED TOTAL SLOTS: TIME AGAINST N", "EXPERTS N", &by_slots);
    c
}
