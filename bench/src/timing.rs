//! Repeated measurement: warm up, then run until a time budget or a count is reached; report the median.

use std::time::{Duration, Instant};

/// Median seconds of `f` over at least `min_runs` runs and about `budget` of wall time.
pub fn median_secs(budget: Duration, min_runs: usize, mut f: impl FnMut()) -> f64 {
    f(); // warm-up: plans, pipelines and caches are built here
    let start = Instant::now();
    let mut samples = Vec::new();
    while samples.len() < min_runs || (start.elapsed() < budget && samples.len() < 1000) {
        let t = Instant::now();
        f();
        samples.push(t.elapsed().as_secs_f64());
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// The median of values already measured.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
