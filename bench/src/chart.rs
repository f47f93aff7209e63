//! The chart of docs/benchmarks.svg: layer time per case, softmoe against its peers (log scale).

use plotters::prelude::*;

use crate::Row;

pub fn layer_chart(rows: &[Row], path: &str, device: &str) -> Result<(), Box<dyn std::error::Error>> {
    // Runs that failed (a peer that cannot run a shape) have no bar; the table says why.
    let layer: Vec<&Row> = rows.iter().filter(|r| r.suite == "layer" && r.secs.is_finite()).collect();
    let mut cases: Vec<String> = Vec::new();
    for r in &layer {
        if !cases.contains(&r.case) {
            cases.push(r.case.clone());
        }
    }
    if cases.is_empty() {
        return Ok(());
    }
    let ms = |r: &&Row| r.secs * 1e3;
    let max = layer.iter().map(ms).fold(1e-3, f64::max) * 2.0;
    let min = layer.iter().map(ms).fold(f64::MAX, f64::min) / 2.0;
    let series: Vec<(&str, RGBColor)> = [
        ("softmoe (GPU)", RGBColor(52, 81, 209)),
        ("burn (wgpu, same adapter)", RGBColor(200, 60, 60)),
        ("candle (CPU)", RGBColor(230, 140, 40)),
    ]
    .into_iter()
    .filter(|(v, _)| layer.iter().any(|r| r.variant == *v))
    .collect();
    // One segment per (case, series); the case's name labels its middle segment.
    let per = series.len().max(1);
    let root = SVGBackend::new(path, (900, 120 + 25 * (cases.len() * per) as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("Soft MoE layer, time per call (ms, log scale) on {device}"), ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(330)
        .build_cartesian_2d((min..max).log_scale(), (0..cases.len() * per).into_segmented())?;
    chart
        .configure_mesh()
        .y_labels(cases.len() * per)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) if i % per == per / 2 => cases.get(i / per).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc("milliseconds")
        .draw()?;
    for (k, (variant, colour)) in series.into_iter().enumerate() {
        let bars = layer.iter().filter(|r| r.variant == variant).map(|r| {
            let i = cases.iter().position(|c| *c == r.case).unwrap_or(0) * per + k;
            Rectangle::new([(min, SegmentValue::Exact(i)), (r.secs * 1e3, SegmentValue::Exact(i + 1))], colour.filled())
        });
        chart.draw_series(bars)?.label(variant).legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.9)).draw()?;
    root.present()?;
    Ok(())
}
