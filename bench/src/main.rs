//! `cargo xtask bench`: softmoe against its straightforward kernels, against candle on the CPU and
//! (feature `burn`) against burn on wgpu on the same adapter, side by side in one run. Writes
//! docs/benchmarks.md and docs/benchmarks.svg.
//!
//! softmoe-bench [--quick] [--limits] [--only gemm,router,layer,model,train] [--gemm-case TEXT] [--per-adapter] [--out DIR]
//! (--limits: measure and print the adapter's limits only; --only: run just those suites;
//! --gemm-case: only the GEMM cases whose name contains TEXT;
//! --per-adapter: write benchmarks-<adapter>.md instead of benchmarks.md)

#[cfg(feature = "burn")]
mod burn_layer;
mod candle_layer;
mod chart;
mod limits;
mod timing;
mod training;

use std::fmt::Write as _;
use std::time::Duration;

use softmoe::flops::{gemm_bytes, soft_moe_bytes, soft_moe_flops, vit_bytes, vit_flops_per_image};
use softmoe::kernels::gemm::{GemmKernel, Matmul, MatrixView};
use softmoe::kernels::profile_ops;
use softmoe::layers::stages;
use softmoe::model::Vit;
use softmoe::random::{random_input, random_layer, random_vit, LayerShape, Rng};
use softmoe::weights::VitWeights;
use softmoe::{Gelu, GpuContext, SoftMoe, Tensor};
use wgpu::util::DeviceExt;

use timing::{median, median_secs};

/// One measured line of the report.
pub struct Row {
    pub suite: &'static str,
    pub case: String,
    pub variant: String,
    pub secs: f64,
    pub gflops: f64,
    pub gbs: f64,
    /// Ran on the adapter whose limits were measured (so its roofline share is meaningful).
    pub on_adapter: bool,
    pub note: String,
}

impl Row {
    /// A row timed on the measured adapter: `secs` for `flops` and `bytes`.
    fn on_adapter(
        suite: &'static str,
        case: impl Into<String>,
        variant: impl Into<String>,
        secs: f64,
        flops: f64,
        bytes: f64,
        note: String,
    ) -> Row {
        Row {
            suite,
            case: case.into(),
            variant: variant.into(),
            secs,
            gflops: flops / secs / 1e9,
            gbs: bytes / secs / 1e9,
            on_adapter: true,
            note,
        }
    }
}

/// The line after which docs/benchmarks.md is kept as it is by a new run.
const KEEP_MARKER: &str = "<!-- kept by cargo xtask bench: hand-written sections below -->";

fn main() {
    if let Err(e) = run() {
        eprintln!("softmoe-bench: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let out = args.iter().position(|a| a == "--out").and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| "docs".into());
    let budget = Duration::from_secs_f64(if quick { 0.5 } else { 3.0 });
    let ctx = pollster::block_on(GpuContext::new())?;
    let device = format!("{} ({:?}, {:?})", ctx.info.name, ctx.info.backend, ctx.info.device_type);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string()))
        .unwrap_or_default();
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    eprintln!("device: {device}; CPU: {cpu}, {threads} threads; timestamps: {}", ctx.features.contains(wgpu::Features::TIMESTAMP_QUERY));
    let lim = limits::measure(&ctx, quick)?;
    eprintln!(
        "limits: copy kernel {:.2} GB/s, copy_buffer_to_buffer {:.2} GB/s, FMA {:.2} GFLOP/s ({})",
        lim.copy_kernel_gbs, lim.copy_buffer_gbs, lim.fma_gflops, lim.how
    );
    if args.iter().any(|a| a == "--limits") {
        return Ok(());
    }

    let mut rows = Vec::new();
    // --only gemm,router,layer,model,train runs those suites alone (the report then holds only them).
    let only = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)).cloned();
    let runs = |suite: &str| only.as_deref().is_none_or(|o| o.split(',').any(|s| s == suite));
    if runs("gemm") {
        let case = args.iter().position(|a| a == "--gemm-case").and_then(|i| args.get(i + 1)).map(String::as_str);
        gemms(&ctx, quick, case.unwrap_or(""), &mut rows)?;
    }
    if runs("router") {
        routers(&ctx, quick, &mut rows)?;
    }
    if runs("layer") {
        layers(&ctx, quick, budget, &mut rows)?;
    }
    if runs("model") {
        model(&ctx, budget, &mut rows)?;
    }
    if runs("train") {
        training::training(&ctx, quick, budget, &mut rows)?;
    }

    // --per-adapter: benchmarks-<adapter>.md, so runs on several devices sit side by side in docs/.
    let stem = if args.iter().any(|a| a == "--per-adapter") { format!("benchmarks-{}", slug(&ctx.info.name)) } else { "benchmarks".into() };
    let mut md = report(&rows, &device, &cpu, threads, &lim, &stem);
    // Sections written by hand below KEEP_MARKER (e.g. `softmoe explore`'s) survive a new run.
    if let Some(at) =
        std::fs::read_to_string(format!("{out}/{stem}.md")).ok().and_then(|old| old.find(KEEP_MARKER).map(|i| old[i..].to_string()))
    {
        md = format!("{}\n\n{at}", md.trim_end());
    }
    std::fs::create_dir_all(&out)?;
    std::fs::write(format!("{out}/{stem}.md"), &md)?;
    chart::layer_chart(&rows, &format!("{out}/{stem}.svg"), &device)?;
    println!("{md}");
    Ok(())
}

/// The GEMMs of real layers, taken from the layer's own plan (`SoftMoe::stage_gemms`: the kernels,
/// views and expert groups its forward launches), each timed with every kernel that can run it.
fn gemms(ctx: &std::sync::Arc<GpuContext>, quick: bool, case_filter: &str, rows: &mut Vec<Row>) -> Result<(), Box<dyn std::error::Error>> {
    let mut layers = vec![("demo", shape(64, 8, 2, 128), 49, vec![1, 64])];
    if !quick {
        layers.push(("ViT-S/16", shape(384, 128, 1, 1536), 196, vec![1, 32]));
    }
    let mut rng = Rng::new(1);
    for (name, s, m, batches) in layers {
        let w = random_layer(&mut rng, s);
        let layer = pollster::block_on(SoftMoe::new(ctx.clone(), &w))?;
        for b in batches {
            let g = layer.stage_gemms(b, m, false);
            // Dispatches per Dense layer, and the storage bindings the experts' kernels are split over.
            let groups = g.experts.len();
            let bindings: usize = g.experts.iter().map(|e| e.0.b_buffers()).sum();
            let dense0: Vec<Matmul> = g.experts.iter().map(|e| e.0).collect();
            let dense1: Vec<Matmul> = g.experts.iter().map(|e| e.1).collect();
            let experts = |mm: &Matmul| format!("{} experts × ({}×{} · {}×{})", s.n, mm.m, mm.k, mm.k, mm.n);
            let cases: Vec<(String, Vec<Matmul>)> = vec![
                (
                    format!(
                        "{name} b={b} logits ({}×{} · {}×{}, tokens normalised: {})",
                        g.logits.m, g.logits.k, g.logits.k, g.logits.n, g.logits.normalize_rows
                    ),
                    vec![g.logits],
                ),
                (
                    format!(
                        "{name} b={b} X̃ = DᵀX ({} × {}×{} · {}×{})",
                        b, g.slot_inputs.m, g.slot_inputs.k, g.slot_inputs.k, g.slot_inputs.n
                    ),
                    vec![g.slot_inputs],
                ),
                (format!("{name} b={b} expert Dense₀: {}, {groups} dispatch(es), {bindings} binding(s)", experts(&dense0[0])), dense0),
                (format!("{name} b={b} expert Dense₁: {}, {groups} dispatch(es), {bindings} binding(s)", experts(&dense1[0])), dense1),
                (
                    format!("{name} b={b} Y = CỸ ({} × {}×{} · {}×{})", b, g.combine.m, g.combine.k, g.combine.k, g.combine.n),
                    vec![g.combine],
                ),
            ];
            // Stages the layer runs inside a fused kernel at this batch (the router's one dispatch, the
            // slot experts) are still timed as GEMMs, marked as not launched.
            let fused = |case: &str| {
                (g.router_in_one_dispatch() && case.contains(" logits ("))
                    || (g.slot_experts.is_some() && (case.contains("DᵀX (") || case.contains("expert Dense")))
            };
            for (case, mms) in cases.into_iter().filter(|(case, _)| case.contains(case_filter)) {
                let launched = !fused(&case);
                time_gemm_case(ctx, &mut rng, &case, &mms, launched, rows)?;
            }
            // Where the layer runs X̃ and both expert Dense layers as one dispatch: that beside the
            // three GEMMs it replaces (with the kernels chosen for them).
            if let Some(shape) = g.slot_experts {
                let case = format!("{name} b={b} X̃ = DᵀX, Dense₀, Dense₁ ({} experts × {} rows)", s.n, b * s.p);
                if case.contains(case_filter) {
                    time_slot_experts(ctx, &mut rng, &case, shape, &g, rows)?;
                }
            }
        }
    }
    Ok(())
}

/// The fused slot experts (`kernels::slot_experts`) against the three GEMMs they replace, on the same
/// buffers; FLOPs and bytes are the three GEMMs'.
fn time_slot_experts(
    ctx: &GpuContext,
    rng: &mut Rng,
    case: &str,
    shape: softmoe::kernels::slot_experts::SlotExpertsShape,
    g: &softmoe::layers::StageGemms,
    rows: &mut Vec<Row>,
) -> Result<(), Box<dyn std::error::Error>> {
    use softmoe::kernels::slot_experts;
    let (b, m, d, n, p, h) = (shape.batch, shape.tokens, shape.d, shape.n, shape.p, shape.h);
    let s = n * p;
    let (dm, x) = (buffer(ctx, &rng.vec(b * m * s, 0.1)), buffer(ctx, &rng.vec(b * m * d, 1.0)));
    let (w0, b0) = (buffer(ctx, &rng.vec(n * d * h, 0.2)), buffer(ctx, &rng.vec(n * h, 0.1)));
    let (w1, b1) = (buffer(ctx, &rng.vec(n * h * d, 0.1)), buffer(ctx, &rng.vec(n * d, 0.1)));
    let (xs, hidden, ys) = (buffer(ctx, &vec![0.0; b * s * d]), buffer(ctx, &vec![0.0; b * s * h]), buffer(ctx, &vec![0.0; b * s * d]));
    let [(mm0, mm1)] = g.experts.as_slice() else { return Ok(()) };
    let gemms = vec![
        g.slot_inputs.op(ctx, &dm, &x, None, &xs)?,
        mm0.op(ctx, &xs, &w0, Some(&b0), &hidden)?,
        mm1.op(ctx, &hidden, &w1, Some(&b1), &ys)?,
    ];
    let fused = vec![slot_experts::op(ctx, shape, &dm, &x, &w0, &b0, &w1, &b1, &ys)?];
    let mms = [g.slot_inputs, *mm0, *mm1];
    let flops: f64 = mms.iter().map(|mm| mm.flops() as f64).sum();
    let bytes: f64 = mms.iter().map(|mm| gemm_bytes(mm) as f64).sum();
    let mut base = None;
    for (variant, ops) in [("three GEMMs (3 dispatches)", gemms), ("slot_experts (1 dispatch; chosen by the layer)", fused)] {
        let secs = gpu_time_ops(ctx, &ops.iter().collect::<Vec<_>>())?;
        let note = base.map(|t: f64| format!("{:.2}× the three GEMMs", t / secs)).unwrap_or_else(|| "baseline".into());
        base.get_or_insert(secs);
        eprintln!("gemm {case} {variant}: {:.3} ms", secs * 1e3);
        rows.push(Row::on_adapter("gemm", case, variant, secs, flops, bytes, note));
    }
    Ok(())
}

/// Times one stage (one GEMM per expert group) with each kernel that accepts it, on buffers exactly
/// as long as the views need (`Matmul::spans`); the naive kernel is the baseline.
fn time_gemm_case(
    ctx: &GpuContext,
    rng: &mut Rng,
    case: &str,
    mms: &[Matmul],
    launched: bool,
    rows: &mut Vec<Row>,
) -> Result<(), Box<dyn std::error::Error>> {
    let span = |i: usize| mms.iter().map(|mm| mm.spans()[i]).max().unwrap_or(0).max(1);
    let (a, c) = (buffer(ctx, &rng.vec(span(0), 1.0)), buffer(ctx, &vec![0.0; span(2)]));
    // Each group has its own weights, as the layer's groups do: B in as many buffers as the
    // description splits it over (`b_group`), each as long as its first.
    let bs: Vec<(Vec<wgpu::Buffer>, wgpu::Buffer)> = mms
        .iter()
        .map(|mm| {
            let parts = (0..mm.b_buffers()).map(|_| buffer(ctx, &rng.vec(mm.spans()[1].max(1), 1.0))).collect();
            (parts, buffer(ctx, &rng.vec(mm.spans()[3].max(1), 1.0)))
        })
        .collect();
    fn refs(parts: &[wgpu::Buffer]) -> Vec<&wgpu::Buffer> {
        parts.iter().collect()
    }
    let flops: f64 = mms.iter().map(|mm| mm.flops() as f64).sum();
    let bytes: f64 = mms.iter().map(|mm| gemm_bytes(mm) as f64).sum();
    let chosen = GemmKernel::choose(&mms[0], ctx.kernels_for());
    let mut naive = None;
    // Vec4Blocked: the vec4 kernel as it was before its single-row path, kept as a baseline row.
    // Only the vec4 kernels fuse the router's row normalisation.
    let vec4 = |k: GemmKernel| k.normalizes_rows();
    for kernel in [
        GemmKernel::Naive,
        GemmKernel::Tiled,
        GemmKernel::Skinny,
        GemmKernel::Vec4Blocked,
        GemmKernel::Vec4,
        GemmKernel::SplitK,
        GemmKernel::TiledVec4,
        GemmKernel::Vec4Wide,
        GemmKernel::Vec4Wide16,
    ] {
        // Only one or two last rows (m ≡ 1, 2 mod 8) tell Vec4Blocked from Vec4.
        if kernel == GemmKernel::Vec4Blocked && !matches!(mms[0].m % 8, 1 | 2) {
            continue;
        }
        // The kernels that cannot run this description (vec4 B, rows, fused normalisation) are skipped.
        let mut ops = Vec::new();
        for (mm, (b, bias)) in mms.iter().zip(&bs) {
            let mm = if vec4(kernel) || !mm.normalize_rows { *mm } else { Matmul { normalize_rows: false, ..*mm } };
            match mm.op_split_with(kernel, ctx, &a, &refs(b), mm.bias_batch_stride.map(|_| bias), &c) {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        if ops.len() < mms.len() {
            continue;
        }
        let secs = gpu_time_ops(ctx, &ops.iter().collect::<Vec<_>>())?;
        let mark = match (kernel == chosen, launched) {
            (true, true) => "; chosen by the layer",
            (true, false) => "; chosen for this GEMM, which the layer runs fused at this batch",
            _ => "",
        };
        let unfused = if mms[0].normalize_rows && !vec4(kernel) { "; without the fused normalisation" } else { "" };
        let note =
            naive.map(|n: f64| format!("{:.1}× naive{mark}{unfused}", n / secs)).unwrap_or_else(|| format!("baseline{mark}{unfused}"));
        naive.get_or_insert(secs);
        eprintln!("gemm {case} {kernel:?}: {:.3} ms, {:.2} GFLOP/s", secs * 1e3, flops / secs / 1e9);
        rows.push(Row::on_adapter("gemm", case, format!("{kernel:?}"), secs, flops, bytes, note));
    }
    // Expert weights are stored in column panels; the chosen kernel on the same weights row-major is
    // the side-by-side baseline of that choice.
    if mms[0].b == MatrixView::panels(mms[0].k, mms[0].n) {
        let ops: Vec<_> = mms
            .iter()
            .zip(&bs)
            .map(|(mm, (b, bias))| {
                let mm = Matmul { b: MatrixView::row_major(mm.k, mm.n), ..*mm };
                mm.op_split_with(chosen, ctx, &a, &refs(b), mm.bias_batch_stride.map(|_| bias), &c)
            })
            .collect::<Result<_, _>>()?;
        let secs = gpu_time_ops(ctx, &ops.iter().collect::<Vec<_>>())?;
        let panels = rows.iter().rev().find(|r| r.case == case && r.variant == format!("{chosen:?}")).map_or(f64::NAN, |r| r.secs);
        eprintln!("gemm {case} {chosen:?} on row-major weights: {:.3} ms", secs * 1e3);
        rows.push(Row {
            suite: "gemm",
            case: case.to_string(),
            variant: format!("{chosen:?}, row-major weights"),
            secs,
            gflops: flops / secs / 1e9,
            gbs: bytes / secs / 1e9,
            on_adapter: true,
            note: format!("baseline of the panel layout: panels {:.2}× faster", secs / panels),
        });
    }
    Ok(())
}

/// The router stage (normalise, logits, both softmaxes): the fused kernels against the separate ones.
fn routers(ctx: &GpuContext, quick: bool, rows: &mut Vec<Row>) -> Result<(), Box<dyn std::error::Error>> {
    use softmoe::kernels::router_softmax::{self, RowReduction};
    use softmoe::kernels::{combine_softmax, dispatch_softmax, l2_normalize};
    let mut cases = vec![
        ("router, demo b=1 (49 tokens, d=64, 16 slots)", 1, 49, 64, 16),
        ("router, demo b=64 (64 × 49 tokens, d=64, 16 slots)", 64, 49, 64, 16),
        ("router, ViT-S b=1 (196 tokens, d=384, 128 slots)", 1, 196, 384, 128),
        ("router, ViT-S b=8 (8 × 196 tokens, d=384, 128 slots)", 8, 196, 384, 128),
    ];
    if quick {
        cases.truncate(2);
    }
    let mut rng = Rng::new(5);
    for (name, b, m, d, s) in cases {
        let rows_n = b * m;
        let (x, mu) = (buffer(ctx, &rng.vec(rows_n * d, 1.0)), buffer(ctx, &rng.vec(d * s, 1.0)));
        let (xn, lg, dm, cm) = (
            buffer(ctx, &vec![0.0; rows_n * d]),
            buffer(ctx, &vec![0.0; rows_n * s]),
            buffer(ctx, &vec![0.0; rows_n * s]),
            buffer(ctx, &vec![0.0; rows_n * s]),
        );
        let mm = stages::logits(rows_n, d, s, 1.0);
        let separate = vec![
            l2_normalize::rows_op(ctx, &x, &xn, rows_n, d)?,
            mm.op(ctx, &xn, &mu, None, &lg)?,
            dispatch_softmax::op(ctx, &lg, &dm, b, m, s)?,
            combine_softmax::op(ctx, &lg, &cm, rows_n, s)?,
        ];
        let mut variants = vec![("separate kernels (4 dispatches)".to_string(), separate)];
        let mut reductions = vec![RowReduction::Shared];
        if ctx.features.contains(wgpu::Features::SUBGROUP) {
            reductions.push(RowReduction::Subgroup);
        }
        for red in reductions {
            // As chosen (an example spread over several workgroups at small batch), and one
            // workgroup per example where that differs: the spread's own baseline.
            let parts = router_softmax::parts_for(b, m, ctx.kernels_for());
            for p in if parts > 1 { vec![parts, 1] } else { vec![1] } {
                let fused = router_softmax::op_with(red, ctx, &lg, &dm, &cm, b, m, s, p)?;
                let logits_op = Matmul { normalize_rows: true, ..mm }.op(ctx, &x, &mu, None, &lg)?;
                variants
                    .push((format!("fused ({red:?} row reductions, 2 dispatches, {p} workgroup(s) per example)"), vec![logits_op, fused]));
            }
        }
        // Small layers at small batch: logits and softmaxes in one dispatch, as the layer runs them.
        if router_softmax::logits_fit(b, m, s, d) {
            // As the layer splits an example, and in one workgroup: the split's own baseline.
            let parts = router_softmax::logits_parts(b, m, ctx.kernels_for());
            let copies = buffer(ctx, &vec![0.0; parts * rows_n * s]);
            for p in if parts > 1 { vec![parts, 1] } else { vec![1] } {
                let one = router_softmax::logits_op(ctx, &x, &mu, &copies, &dm, &cm, (b, m, s, d), p, true, 1.0)?;
                let chosen = if p == parts { "; chosen by the layer" } else { "" };
                variants.push((
                    format!("one dispatch (router_logits: logits and both softmaxes, {p} workgroup(s) per example{chosen})"),
                    vec![one],
                ));
            }
        }
        let bytes = (4 * (rows_n * d + d * s + 2 * rows_n * s)) as f64;
        let flops = mm.flops() as f64;
        let mut base = None;
        for (variant, ops) in variants {
            let secs = gpu_time_ops(ctx, &ops.iter().collect::<Vec<_>>())?;
            let note = base.map(|b: f64| format!("{:.2}× the separate kernels", b / secs)).unwrap_or_else(|| "baseline".into());
            base.get_or_insert(secs);
            eprintln!("router {name} {variant}: {:.3} ms", secs * 1e3);
            rows.push(Row::on_adapter("router", name, variant, secs, flops, bytes, note));
        }
    }
    Ok(())
}

fn buffer(ctx: &GpuContext, data: &[f32]) -> wgpu::Buffer {
    ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some("bench"),
        contents: bytemuck::cast_slice(data),
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
    })
}

/// Median summed GPU seconds of a sequence of ops over 5 runs, or the first run alone when it took
/// over a second (the slow baselines of the large cases on a software adapter).
fn gpu_time_ops(ctx: &GpuContext, ops: &[&softmoe::kernels::Op]) -> Result<f64, Box<dyn std::error::Error>> {
    let mut v = Vec::new();
    for _ in 0..5 {
        match pollster::block_on(profile_ops(ctx, ops))? {
            Some(t) => v.push(t.iter().sum()),
            None => {
                let t = std::time::Instant::now();
                ctx.queue.submit([softmoe::kernels::encode_ops(ctx, ops).finish()]);
                ctx.device.poll(wgpu::PollType::wait_indefinitely())?;
                v.push(t.elapsed().as_secs_f64());
            }
        }
        if v[0] > 1.0 {
            break;
        }
    }
    Ok(median(v))
}

/// Whole layers: ours (wall and GPU time) against candle on the CPU, same weights, same input.
fn layers(ctx: &std::sync::Arc<GpuContext>, quick: bool, budget: Duration, rows: &mut Vec<Row>) -> Result<(), Box<dyn std::error::Error>> {
    let mut cases: Vec<(&str, LayerShape, usize, Vec<usize>)> = vec![
        ("demo layer (m=49, d=64, 8×2 slots, h=128)", shape(64, 8, 2, 128), 49, vec![1, 64]),
        ("ViT-S/16 layer (m=196, d=384, 128×1, h=1536)", shape(384, 128, 1, 1536), 196, vec![1, 8, 32]),
        ("ViT-B/16 layer (m=196, d=768, 128×1, h=3072)", shape(768, 128, 1, 3072), 196, vec![1]),
    ];
    if quick {
        cases.truncate(1);
    }
    for (name, s, m, batches) in cases {
        let mut rng = Rng::new(2);
        let w = random_layer(&mut rng, s);
        let layer = pollster::block_on(SoftMoe::new(ctx.clone(), &w))?;
        let f16 = if ctx.features.contains(wgpu::Features::SHADER_F16) {
            Some(pollster::block_on(SoftMoe::with_options(ctx.clone(), &w, softmoe::layers::LayerOptions { f16_weights: true }))?)
        } else {
            None
        };
        let peer = candle_layer::CandleSoftMoe::new(&w)?;
        #[cfg(feature = "burn")]
        let burn_peer = burn_layer::BurnSoftMoe::new(&w);
        for b in batches {
            let x = random_input(&mut rng, b, m, s.d);
            let flops = soft_moe_flops(s.d, s.n, s.p, s.h, b, m) as f64;
            let bytes = soft_moe_bytes(s.d, s.n, s.p, s.h, b, m) as f64;
            let case = format!("{name}, b={b}");
            let ours = median_secs(budget, 3, || {
                pollster::block_on(layer.forward(&x)).expect("forward");
            });
            let profile = pollster::block_on(layer.profile(&x))?;
            let gpu: Option<f64> = profile.as_ref().map(|t| t.iter().map(|(_, s)| s).sum());
            // Inside one forward: each dispatch's GPU time; the wall time's rest is gaps and host work.
            if let (Some(t), 1) = (&profile, b) {
                let total: f64 = t.iter().map(|(_, s)| s).sum();
                for (i, (label, secs)) in t.iter().enumerate() {
                    rows.push(Row {
                        suite: "dispatch",
                        case: format!("{name}, b=1: dispatch {i}"),
                        variant: label.to_string(),
                        secs: *secs,
                        gflops: f64::NAN,
                        gbs: 0.0,
                        on_adapter: false,
                        note: format!("{:.1} % of the dispatches' {:.2} ms", 100.0 * secs / total, total * 1e3),
                    });
                }
            }
            let xc = candle_layer::input(&x)?;
            let theirs = median_secs(budget, 3, || {
                peer.forward(&xc).expect("candle forward");
            });
            // The peer computes the same function: check it before comparing speed.
            let ya = pollster::block_on(layer.forward(&x))?.y.data;
            let yb: Vec<f32> = peer.forward(&xc)?.flatten_all()?.to_vec1()?;
            let diff = softmoe::compare::max_abs_diff(&ya, &yb).map_err(|e| format!("layer {case} against candle: {e}"))?.max;
            let overhead =
                gpu.map(|g| format!("GPU {:.2} ms, host+readback {:.2} ms", g * 1e3, (ours - g).max(0.0) * 1e3)).unwrap_or_default();
            eprintln!(
                "layer {case}: ours {:.2} ms, candle {:.2} ms ({:.2}×), max |Δy| {diff:.1e}",
                ours * 1e3,
                theirs * 1e3,
                theirs / ours
            );
            rows.push(Row {
                suite: "layer",
                case: case.clone(),
                variant: "softmoe (GPU)".into(),
                secs: ours,
                gflops: flops / ours / 1e9,
                gbs: bytes / ours / 1e9,
                on_adapter: true,
                note: overhead,
            });
            if let Some(f16) = &f16 {
                let secs = median_secs(budget, 3, || {
                    pollster::block_on(f16.forward(&x)).expect("f16 forward");
                });
                let yh = pollster::block_on(f16.forward(&x))?.y.data;
                let dh = softmoe::compare::max_abs_diff(&ya, &yh).map_err(|e| format!("layer {case}, f16 weights: {e}"))?.max;
                let half_bytes = bytes - (2 * s.n * s.d * s.h) as f64 * 2.0;
                rows.push(Row {
                    suite: "layer",
                    case: case.clone(),
                    variant: "softmoe (GPU, f16 weights)".into(),
                    secs,
                    gflops: flops / secs / 1e9,
                    gbs: half_bytes / secs / 1e9,
                    on_adapter: true,
                    note: format!("{:.2}× the f32 layer; max |Δy| vs f32 {dh:.1e}", ours / secs),
                });
            }
            #[cfg(feature = "burn")]
            {
                let variant = "burn (wgpu, same adapter)".to_string();
                match burn_peer.forward(&x) {
                    Ok(yb) => {
                        let secs = median_secs(budget, 3, || {
                            let _ = burn_peer.forward(&x);
                        });
                        let db = softmoe::compare::max_abs_diff(&ya, &yb).map_err(|e| format!("layer {case} against burn: {e}"))?.max;
                        eprintln!("layer {case}: burn {:.2} ms ({:.2}× ours), max |Δy| {db:.1e}", secs * 1e3, secs / ours);
                        rows.push(Row::on_adapter(
                            "layer",
                            case.clone(),
                            variant,
                            secs,
                            flops,
                            bytes,
                            format!("ours/burn speed {:.2}×; max |Δy| {db:.1e}", secs / ours),
                        ));
                    }
                    // Reported, not fatal: that burn cannot run a shape on this adapter is a result.
                    Err(e) => {
                        eprintln!("layer {case}: burn failed: {e}");
                        rows.push(Row {
                            suite: "layer",
                            case: case.clone(),
                            variant,
                            secs: f64::NAN,
                            gflops: f64::NAN,
                            gbs: 0.0,
                            on_adapter: true,
                            note: format!("failed: {e}"),
                        });
                    }
                }
            }
            rows.push(Row {
                suite: "layer",
                case,
                variant: "candle (CPU)".into(),
                secs: theirs,
                gflops: flops / theirs / 1e9,
                gbs: bytes / theirs / 1e9,
                on_adapter: false,
                note: format!("ours/candle speed {:.2}×; max |Δy| {diff:.1e}", theirs / ours),
            });
        }
    }
    Ok(())
}

fn shape(d: usize, n: usize, p: usize, h: usize) -> LayerShape {
    LayerShape { d, n, p, h, scale: 1.0, gelu: Gelu::Tanh, normalize: true }
}

/// The shipped models (Soft MoE, dense and the sparse baselines; a random model of the demo's shape
/// when none is present): images per second at batch 1 and 64, on the GPU and on the f64 CPU path.
fn model(ctx: &std::sync::Arc<GpuContext>, budget: Duration, rows: &mut Vec<Row>) -> Result<(), Box<dyn std::error::Error>> {
    let mut models = Vec::new();
    for name in ["soft-moe-vit", "dense-vit", "tokens-choice-vit", "experts-choice-vit"] {
        if let Ok(w) = VitWeights::load(format!("weights/{name}")) {
            models.push((format!("shipped {name}"), w));
        }
    }
    if models.is_empty() {
        let c = softmoe::model::VitConfig::from_json(DEMO_CONFIG, "demo config")?;
        models.push(("random model of the demo's shape".into(), random_vit(&mut Rng::new(3), &c)));
    }
    // Soft MoE against dense at b = 1, the two forwards interleaved so that drift in the machine's
    // load falls on both alike: the paper's claim is that the Soft MoE model is no slower.
    let find = |name: &str| models.iter().find(|(w, _)| w == &format!("shipped {name}")).map(|(_, w)| w);
    if let (Some(soft), Some(dense)) = (find("soft-moe-vit"), find("dense-vit")) {
        let (soft_vit, dense_vit) = (pollster::block_on(Vit::new(ctx.clone(), soft))?, pollster::block_on(Vit::new(ctx.clone(), dense))?);
        let side = soft.config.image_size;
        let image = Tensor::new(vec![1, side, side], Rng::new(4).vec(side * side, 0.5).into_iter().map(|v| v + 0.5).collect())?;
        let time = |vit: &Vit| {
            let t = std::time::Instant::now();
            pollster::block_on(vit.classify(&image)).expect("classify");
            t.elapsed().as_secs_f64()
        };
        let (_, _) = (time(&soft_vit), time(&dense_vit));
        let (mut ts, mut td) = (Vec::new(), Vec::new());
        let start = std::time::Instant::now();
        while ts.len() < 20 || (start.elapsed() < 2 * budget && ts.len() < 500) {
            ts.push(time(&soft_vit));
            td.push(time(&dense_vit));
        }
        let (s_med, d_med) = (median(ts), median(td));
        eprintln!("model b=1 interleaved: Soft MoE {:.3} ms, dense {:.3} ms", s_med * 1e3, d_med * 1e3);
        // Inside one forward of each: GPU time per kernel (medians of 11 profiles, summed over the
        // kernel's dispatches), so where the two differ shows.
        for (name, vit) in [("soft-moe-vit", &soft_vit), ("dense-vit", &dense_vit)] {
            let runs: Vec<Vec<(&str, f64)>> = (0..11).filter_map(|_| pollster::block_on(vit.profile(&image)).ok().flatten()).collect();
            let Some(first) = runs.first() else { continue };
            let per_dispatch: Vec<(&str, f64)> =
                (0..first.len()).map(|i| (first[i].0, median(runs.iter().map(|r| r[i].1).collect()))).collect();
            let total: f64 = per_dispatch.iter().map(|(_, t)| t).sum();
            let mut labels: Vec<&str> = per_dispatch.iter().map(|(l, _)| *l).collect();
            labels.sort();
            labels.dedup();
            for label in labels {
                let (count, secs) = per_dispatch.iter().filter(|(l, _)| *l == label).fold((0, 0.0), |(c, t), (_, s)| (c + 1, t + s));
                rows.push(Row {
                    suite: "dispatch",
                    case: format!("shipped {name}, b=1: {label} (×{count})"),
                    variant: label.to_string(),
                    secs,
                    gflops: f64::NAN,
                    gbs: 0.0,
                    on_adapter: false,
                    note: format!("{:.1} % of the {} dispatches' {:.2} ms", 100.0 * secs / total, per_dispatch.len(), total * 1e3),
                });
            }
        }
        for (variant, t, config, vit) in [("Soft MoE ViT", s_med, &soft.config, &soft_vit), ("dense ViT", d_med, &dense.config, &dense_vit)]
        {
            rows.push(Row {
                suite: "model",
                case: "shipped Soft MoE vs dense ViT, b=1, interleaved".into(),
                variant: variant.into(),
                secs: t,
                gflops: vit_flops_per_image(config) as f64 / t / 1e9,
                gbs: vit_bytes(config, 1) as f64 / t / 1e9,
                on_adapter: true,
                note: format!("{} dispatches; Soft MoE ÷ dense time {:.3}", vit.dispatches(1)?, s_med / d_med),
            });
        }
    }
    for (which, weights) in models {
        let vit = pollster::block_on(Vit::new(ctx.clone(), &weights))?;
        let side = weights.config.image_size;
        let flops = vit_flops_per_image(&weights.config) as f64;
        for b in [1usize, 64] {
            let images = Tensor::new(vec![b, side, side], Rng::new(4).vec(b * side * side, 0.5).into_iter().map(|v| v + 0.5).collect())?;
            let secs = median_secs(budget, 3, || {
                pollster::block_on(vit.classify(&images)).expect("classify");
            });
            let cpu = median_secs(budget, 1, || {
                softmoe::reference::vit_forward(&weights, &images).expect("reference");
            });
            eprintln!("model {which} b={b}: {:.1} images/s GPU, {:.1} images/s f64 CPU reference", b as f64 / secs, b as f64 / cpu);
            let bytes = vit_bytes(&weights.config, b) as f64;
            let dispatches = vit.dispatches(b)?;
            for (variant, t, on_adapter) in [("softmoe (GPU)", secs, true), ("f64 reference (CPU)", cpu, false)] {
                rows.push(Row {
                    suite: "model",
                    case: format!("{which}, b={b}"),
                    variant: variant.into(),
                    secs: t,
                    gflops: flops * b as f64 / t / 1e9,
                    gbs: bytes / t / 1e9,
                    on_adapter,
                    note: if on_adapter {
                        format!("{:.1} images/s, {dispatches} dispatches", b as f64 / t)
                    } else {
                        format!("{:.1} images/s", b as f64 / t)
                    },
                });
            }
        }
    }
    Ok(())
}

pub(crate) const DEMO_CONFIG: &str = r#"{"image_size": 28, "channels": 1, "patch_size": 4, "hidden_size": 64, "num_layers": 4, "num_heads": 4,
 "mlp_dim": 128, "num_classes": 10, "moe_layers": [2, 3], "num_experts": 8, "slots_per_expert": 2, "expert_mlp_dim": 128}"#;

/// The adapter's name as a file-name part: lower-case letters and digits, runs of others as one `-`.
fn slug(name: &str) -> String {
    let s: String = name.to_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    s.split('-').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("-")
}

fn report(rows: &[Row], device: &str, cpu: &str, threads: usize, lim: &limits::Limits, stem: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Benchmarks\n");
    let _ = writeln!(s, "Produced by `cargo xtask bench` (bench/src/main.rs); every ratio below comes from one run, side by side.\n");
    let _ = writeln!(
        s,
        "In the browser, beside onnxruntime-web's WebGPU and wasm EPs (headless Chromium, SwiftShader): `docs/benchmarks-web.md` (`cargo xtask bench-web`).\n"
    );
    let _ = writeln!(s, "- GPU: **{device}**");
    let _ = writeln!(s, "- CPU: {cpu}, {threads} threads (candle runs here)");
    let burn = if cfg!(feature = "burn") {
        "burn 0.22.1 on wgpu (fusion, autotune), on the same adapter"
    } else {
        "not built (feature `burn` off)"
    };
    let _ = writeln!(s, "- burn peer: {burn}");
    let _ =
        writeln!(s, "- FLOPs and bytes are counted in `src/flops.rs` (multiply and add = 2 FLOPs; bytes = the least a kernel must move).");
    let _ = writeln!(s, "- Times are medians. GEMM and router rows are GPU time from timestamp queries; layer and model rows are wall time of a whole call, upload and readback included.");
    let _ = writeln!(s, "- Roofline share: max(FLOPs ÷ the measured FMA rate, bytes ÷ the measured copy-kernel rate) ÷ time, for rows that ran on this adapter; 100 % is as fast as this adapter's own measured limits allow.\n");
    let _ = writeln!(s, "## Adapter limits (measured in this run)\n");
    let _ = writeln!(s, "- vec4 copy kernel: {:.2} GB/s (the shader-visible bandwidth; bytes read + written)", lim.copy_kernel_gbs);
    let _ = writeln!(s, "- copy_buffer_to_buffer: {:.2} GB/s (bytes read + written)", lim.copy_buffer_gbs);
    let _ = writeln!(s, "- FMA chain: {:.2} GFLOP/s", lim.fma_gflops);
    let _ = writeln!(s, "- How: {}\n", lim.how);
    for (suite, title) in [
        ("gemm", "GEMM kernels: optimised against the straightforward kernel"),
        ("router", "Router (normalise, logits, dispatch and combine softmaxes): fused against separate kernels"),
        ("layer", "Soft MoE layer: softmoe on the GPU against burn on the same GPU and candle on the CPU"),
        ("model", "The shipped models"),
        ("train", "Training: one step of softmoe's GPU trainer against the candle trainer on the CPU (same config, batch and initial weights; FLOPs counted as 3 × the forward's)"),
        ("dispatch", "Inside one forward at b = 1: GPU time of each dispatch (layers) and of each kernel over its dispatches (models), from timestamp queries"),
    ] {
        let _ = writeln!(s, "## {title}\n\n| case | implementation | time (ms) | GFLOP/s | GB/s | roofline share | note |\n|---|---|---:|---:|---:|---:|---|");
        for r in rows.iter().filter(|r| r.suite == suite) {
            let gbs = if r.gbs > 0.0 { format!("{:.2}", r.gbs) } else { "".into() };
            let (ms, gflops) = if r.secs.is_finite() {
                (format!("{:.3}", r.secs * 1e3), if r.gflops.is_finite() { format!("{:.2}", r.gflops) } else { "".into() })
            } else {
                ("—".into(), "—".into())
            };
            // max(FLOPs/peak, bytes/bandwidth) ÷ time, against this adapter's measured limits.
            let share = if r.on_adapter && r.secs.is_finite() {
                format!("{:.1} %", 100.0 * lim.share(r.gflops * r.secs * 1e9, r.gbs * r.secs * 1e9, r.secs))
            } else {
                "".into()
            };
            let _ = writeln!(s, "| {} | {} | {} | {} | {} | {} | {} |", r.case, r.variant, ms, gflops, gbs, share, r.note);
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "![layer times]({stem}.svg)");
    s
}
