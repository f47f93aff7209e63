//! `softmoe explore`: times the Soft MoE layer on the current adapter over (experts n, slots per
//! expert p) at fixed parameter budgets (n fixed, p swept: time against n·p) and at fixed total
//! slot counts (n·p fixed, n swept: time against n), with random weights of the given shape.
//! Writes explore.md (the table and the fastest configuration of each budget), explore.json and
//! explore.png into --out, after every configuration.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;
use softmoe::flops::soft_moe_flops;
use softmoe::random::{random_input, random_layer, LayerShape, Rng};
use softmoe::{Error, Gelu, GpuContext, SoftMoe};

use super::args::Args;
use super::explore_chart;

/// Which budget a configuration belongs to: n experts (parameters fixed), or n·p slots.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Budget {
    Experts(usize),
    Slots(usize),
}

impl Budget {
    pub fn label(self) -> String {
        match self {
            Budget::Experts(n) => format!("{n} experts (fixed parameters)"),
            Budget::Slots(s) => format!("{s} slots (fixed total slots)"),
        }
    }
}

/// One timed configuration.
#[derive(Clone, Debug)]
pub struct Point {
    pub budget: Budget,
    pub n: usize,
    pub p: usize,
    /// Median wall seconds of a forward (upload of x, dispatches, readback of y); NaN when it failed.
    pub secs: f64,
    /// Sum of the dispatches' GPU seconds from timestamp queries, when the adapter has them.
    pub gpu_secs: Option<f64>,
    pub dispatches: usize,
    /// Storage buffers the expert kernels are split into (as `SoftMoe` splits them: as many whole
    /// experts per buffer as fit `max_storage_buffer_binding_size`).
    pub bindings: usize,
    pub note: String,
}

fn list(args: &mut Args, name: &str, default: &[usize]) -> Result<Vec<usize>, Error> {
    match args.option(name)? {
        None => Ok(default.to_vec()),
        Some(s) => s
            .split(',')
            .map(|v| v.trim().parse().ok().filter(|&x: &usize| x > 0))
            .collect::<Option<Vec<_>>>()
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Error::Usage(format!("--{name} takes positive integers separated by commas, got `{s}`"))),
    }
}

fn positive(args: &mut Args, name: &str, default: Option<usize>) -> Result<usize, Error> {
    match args.option(name)? {
        None => default.ok_or_else(|| Error::Usage(format!("--{name} is required"))),
        Some(s) => {
            s.parse().ok().filter(|&v: &usize| v > 0).ok_or_else(|| Error::Usage(format!("--{name} must be a positive integer, got `{s}`")))
        }
    }
}

pub fn run(mut args: Args) -> Result<(), Error> {
    let d = positive(&mut args, "d", None)?;
    let m = positive(&mut args, "tokens", None)?;
    let h = positive(&mut args, "hidden", None)?;
    let b = positive(&mut args, "batch", Some(1))?;
    let experts = list(&mut args, "experts", &[8, 32, 128])?;
    let per_expert = list(&mut args, "slots-per-expert", &[1, 2, 4])?;
    let total = list(&mut args, "total-slots", &[128])?;
    let budget_ms = positive(&mut args, "budget-ms", Some(500))?;
    let out = PathBuf::from(args.option("out")?.unwrap_or_else(|| "explore".into()));
    args.finish()?;

    let mut grid: Vec<(Budget, usize, usize)> = Vec::new();
    for &n in &experts {
        grid.extend(per_expert.iter().map(|&p| (Budget::Experts(n), n, p)));
    }
    for &s in &total {
        // Every power-of-two n dividing s, from one expert of s slots to s experts of one slot.
        grid.extend((0..).map(|k| 1usize << k).take_while(|&n| n <= s).filter(|n| s % n == 0).map(|n| (Budget::Slots(s), n, s / n)));
    }
    std::fs::create_dir_all(&out).map_err(|source| Error::Io { path: out.clone(), source })?;
    let ctx = pollster::block_on(GpuContext::new())?;
    let adapter = format!("{} ({:?})", ctx.info.name, ctx.info.backend);
    eprintln!("explore on {adapter}: d = {d}, m = {m}, h = {h}, batch {b}; {} configurations", grid.len());
    let budget = Duration::from_millis(budget_ms as u64);
    let mut points = Vec::new();
    for (budget_of, n, p) in grid {
        let point = time_one(&ctx, budget_of, d, m, h, b, n, p, budget);
        eprintln!(
            "{:>4} experts × {:>3} slots ({:>4} slots): {}",
            n,
            p,
            n * p,
            if point.secs.is_finite() {
                format!("{:.2} ms, {} dispatches, {} bindings", point.secs * 1e3, point.dispatches, point.bindings)
            } else {
                point.note.clone()
            }
        );
        points.push(point);
        // Written after every configuration, so a run cut short (run.sh's timeout) keeps what it timed.
        save(&out, &points, &adapter, &ctx.info.name, (d, m, h, b))?;
    }
    print!("{}", table(&points, &adapter, d, m, h, b));
    eprintln!("wrote {}", out.join("explore.md").display());
    Ok(())
}

/// explore.md, explore.json and explore.png of the configurations timed so far.
fn save(
    out: &std::path::Path,
    points: &[Point],
    adapter: &str,
    name: &str,
    (d, m, h, b): (usize, usize, usize, usize),
) -> Result<(), Error> {
    let write = |file: &str, bytes: &[u8]| softmoe::weights::safetensors::write_atomic(&out.join(file), bytes);
    write("explore.md", table(points, adapter, d, m, h, b).as_bytes())?;
    let rows: Vec<_> = points
        .iter()
        .map(|q| {
            json!({
                "budget": match q.budget { Budget::Experts(_) => "experts", Budget::Slots(_) => "slots" },
                "n": q.n, "p": q.p, "slots": q.n * q.p,
                "ms": if q.secs.is_finite() { Some(q.secs * 1e3) } else { None },
                "gpu_ms": q.gpu_secs.map(|g| g * 1e3), "dispatches": q.dispatches, "bindings": q.bindings, "note": q.note,
            })
        })
        .collect();
    let doc = json!({"adapter": adapter, "d": d, "tokens": m, "hidden": h, "batch": b, "points": rows});
    write("explore.json", (doc.to_string() + "\n").as_bytes())?;
    explore_chart::draw(points, &format!("SOFT MOE LAYER ON {name}: D={d} M={m} H={h} B={b}")).save(&out.join("explore.png"))
}

#[allow(clippy::too_many_arguments)]
fn time_one(
    ctx: &std::sync::Arc<GpuContext>,
    budget_of: Budget,
    d: usize,
    m: usize,
    h: usize,
    b: usize,
    n: usize,
    p: usize,
    budget: Duration,
) -> Point {
    let per_expert = (d * h * 4) as u64;
    let bindings = n.div_ceil(((ctx.max_binding() / per_expert) as usize).max(1));
    let mut point = Point { budget: budget_of, n, p, secs: f64::NAN, gpu_secs: None, dispatches: 0, bindings, note: String::new() };
    let mut rng = Rng::new((n * 1000 + p) as u64);
    let shape = LayerShape { d, n, p, h, scale: 1.0, gelu: Gelu::Tanh, normalize: true };
    let result = (|| -> Result<(), Error> {
        let layer = pollster::block_on(SoftMoe::new(ctx.clone(), &random_layer(&mut rng, shape)))?;
        let x = random_input(&mut rng, b, m, d);
        pollster::block_on(layer.forward(&x))?; // warm-up: the plan and pipelines are built here
        let mut samples = Vec::new();
        let start = Instant::now();
        while samples.len() < 3 || (start.elapsed() < budget && samples.len() < 100) {
            let t = Instant::now();
            pollster::block_on(layer.forward(&x))?;
            samples.push(t.elapsed().as_secs_f64());
        }
        samples.sort_by(f64::total_cmp);
        point.secs = samples[samples.len() / 2];
        if let Some(t) = pollster::block_on(layer.profile(&x))? {
            point.dispatches = t.len();
            point.gpu_secs = Some(t.iter().map(|(_, s)| s).sum());
        }
        Ok(())
    })();
    if let Err(e) = result {
        point.note = e.to_string();
    }
    point
}

/// The markdown table, then the fastest configuration of each budget.
pub fn table(points: &[Point], adapter: &str, d: usize, m: usize, h: usize, b: usize) -> String {
    let mut s = format!(
        "Soft MoE layer on {adapter}: d = {d}, m = {m} tokens, expert hidden {h}, batch {b}; median wall time of a forward \
         (random weights; the layer's own plan)\n\n| budget | experts n | slots/expert p | n·p | ms | GPU ms | GFLOP/s | dispatches | weight bindings | note |\n|---|---|---|---|---|---|---|---|---|---|\n"
    );
    for q in points {
        let flops = soft_moe_flops(d, q.n, q.p, h, b, m) as f64;
        let ms = |v: f64| if v.is_finite() { format!("{:.2}", v * 1e3) } else { "—".into() };
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            q.budget.label(),
            q.n,
            q.p,
            q.n * q.p,
            ms(q.secs),
            q.gpu_secs.map_or("—".into(), ms),
            if q.secs.is_finite() { format!("{:.1}", flops / q.secs / 1e9) } else { "—".into() },
            q.dispatches,
            q.bindings,
            q.note.replace('|', "/")
        );
    }
    s += "\nFastest configuration per budget:\n\n";
    let mut budgets: Vec<Budget> = Vec::new();
    for q in points {
        if !budgets.contains(&q.budget) {
            budgets.push(q.budget);
        }
    }
    for bud in budgets {
        let best = points.iter().filter(|q| q.budget == bud && q.secs.is_finite()).min_by(|x, y| x.secs.total_cmp(&y.secs));
        s += &match best {
            Some(q) => format!("- {}: n = {}, p = {} ({:.2} ms)\n", bud.label(), q.n, q.p, q.secs * 1e3),
            None => format!("- {}: no configuration ran\n", bud.label()),
        };
    }
    s
}
