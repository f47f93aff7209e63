//! The GEMM kernels against the f64 `gemm` reference over plain, transposed and grouped views, at
//! shapes that do and do not divide the tiles, and against each other bit for bit.

use super::reference::{gemm, gemm_canonical_f32};
use super::{Activation, GemmKernel, Matmul, MatrixView, SPLITK_MAX_ROWS};
use crate::config::Gelu;
use crate::random::Rng;
use crate::testing::{assert_bits, assert_close, f32_tol, run_and_read, shared_context, upload, upload_f16};

/// C = A·B through the given view of A, no bias, no activation.
fn plain(m: usize, n: usize, k: usize, batch: usize, a: MatrixView) -> Matmul {
    Matmul { batch, a, ..Matmul::new(m, n, k) }
}

#[test]
fn views_activations_and_bias_match_the_reference() {
    let mut rng = Rng::new(3);
    let c = shared_context();
    let shapes =
        [(1, 1, 1, 1), (63, 65, 17, 2), (64, 64, 64, 1), (129, 3, 70, 3), (5, 130, 1, 2), (2, 7, 200, 4), (3, 132, 45, 2), (13, 8, 70, 1)];
    for (i, &(m, n, k, batch)) in shapes.iter().enumerate() {
        // Row-major, transposed, and m rows in groups of 3 rows, each group 5 rows apart (the
        // expert-slot layout).
        let views = [MatrixView::row_major(m, k), MatrixView::transposed(k, m), MatrixView::grouped(3, 5 * k, k, 2 * k)];
        for (vi, av) in views.into_iter().enumerate() {
            let activation = [Activation::None, Activation::Gelu(Gelu::Tanh), Activation::Gelu(Gelu::Erf)][(i + vi) % 3];
            let mm = Matmul {
                alpha: if vi == 1 { 1.7 } else { 1.0 },
                bias_batch_stride: (vi != 0).then_some(n),
                activation,
                ..plain(m, n, k, batch, av)
            };
            let a = rng.vec(av.span(m, k, batch), 1.0);
            let b = rng.vec(batch * k * n, 1.0);
            let bias = rng.vec(batch * n, 0.5);
            let (ab, bb, biasb, cb) = (upload(&c, &a), upload(&c, &b), upload(&c, &bias), upload(&c, &vec![0.0; batch * m * n]));
            let op = mm.op(&c, &ab, &bb, mm.bias_batch_stride.map(|_| &biasb), &cb).unwrap();
            let got = run_and_read(&c, &[&op], &cb, batch * m * n);
            let want = gemm(&mm, &a, &b, mm.bias_batch_stride.map(|_| bias.as_slice()), batch * m * n);
            // Length-k sums of O(1) terms (√k·1.7 at most) plus the bias, through GELU.
            let what = format!("{m}x{n}x{k} batch {batch} view {vi} {activation:?}");
            assert_close(&what, &got, &want, f32_tol(k, 2.0 * (k as f64).sqrt().max(1.0)));
        }
    }
}

#[test]
fn every_kernel_gives_the_same_bits() {
    let mut rng = Rng::new(5);
    let c = shared_context();
    // n a multiple of 4 everywhere, so the vec4 kernel can run every case.
    // m = 1, 2, 9 and 10 leave one or two rows in a tile: the vec4 kernel's single-row path, k odd and even.
    for (m, n, k) in [
        (1, 4, 1),
        (1, 260, 67),
        (1, 8, 384),
        (2, 64, 129),
        (10, 12, 40),
        (2, 132, 300),
        (3, 68, 33),
        (16, 64, 100),
        (40, 8, 17),
        (130, 132, 65),
        (9, 260, 7),
        (9, 4, 130),
    ] {
        let mm = Matmul {
            bias_batch_stride: Some(n),
            activation: Activation::Gelu(Gelu::Tanh),
            ..plain(m, n, k, 2, MatrixView::row_major(m, k))
        };
        let (a, b, bias) = (upload(&c, &rng.vec(2 * m * k, 1.0)), upload(&c, &rng.vec(2 * k * n, 1.0)), upload(&c, &rng.vec(2 * n, 1.0)));
        let mut kernels = vec![
            GemmKernel::Tiled,
            GemmKernel::Skinny,
            GemmKernel::Naive,
            GemmKernel::Vec4,
            GemmKernel::Vec4Blocked,
            GemmKernel::TiledVec4,
            GemmKernel::Vec4Wide,
            GemmKernel::Vec4Wide16,
        ];
        if m <= SPLITK_MAX_ROWS {
            kernels.push(GemmKernel::SplitK);
        }
        let outs: Vec<Vec<f64>> = kernels
            .iter()
            .map(|&g| {
                let out = upload(&c, &vec![0.0; 2 * m * n]);
                let op = mm.op_with(g, &c, &a, &b, Some(&bias), &out).unwrap();
                run_and_read(&c, &[&op], &out, 2 * m * n)
            })
            .collect();
        for (g, out) in kernels.iter().zip(&outs).skip(1) {
            assert_bits(&format!("{m}x{n}x{k}: Tiled vs {g:?}"), &outs[0], out);
        }
    }
}

#[test]
fn every_kernel_sums_in_the_canonical_order() {
    // Bit for bit against the f32 CPU sum in the canonical order (fused multiply-adds within chunks
    // of SUM_CHUNK, chunks added in order), so the order is a fact, not only an agreement between
    // kernels. K below, at and across chunk boundaries; rows that do and do not fill a tile.
    let mut rng = Rng::new(11);
    let c = shared_context();
    for (m, n, k, batch) in
        [(1, 4, 31, 1), (1, 132, 64, 2), (3, 8, 65, 1), (4, 260, 100, 2), (7, 12, 1536, 1), (13, 4, 97, 3), (70, 68, 33, 1)]
    {
        let mm = plain(m, n, k, batch, MatrixView::row_major(m, k));
        let (a, b) = (rng.vec(batch * m * k, 1.0), rng.vec(batch * k * n, 1.0));
        // WGSL's fma may round once or twice; the adapter's choice is one of these two.
        let [fused, unfused] =
            [true, false].map(|f| gemm_canonical_f32(&mm, &a, &b, batch * m * n, f).into_iter().map(f64::from).collect::<Vec<_>>());
        assert_ne!(fused, unfused, "{m}x{n}x{k}: the case cannot tell a fused fma from an unfused one");
        let (ab, bb) = (upload(&c, &a), upload(&c, &b));
        for g in [
            GemmKernel::Tiled,
            GemmKernel::Skinny,
            GemmKernel::Naive,
            GemmKernel::Vec4,
            GemmKernel::Vec4Blocked,
            GemmKernel::SplitK,
            GemmKernel::TiledVec4,
            GemmKernel::Vec4Wide,
            GemmKernel::Vec4Wide16,
        ] {
            if g == GemmKernel::SplitK && m > SPLITK_MAX_ROWS {
                continue;
            }
            let out = upload(&c, &vec![0.0; batch * m * n]);
            let got = run_and_read(&c, &[&mm.op_with(g, &c, &ab, &bb, None, &out).unwrap()], &out, batch * m * n);
            let (want, kind) = if got == fused { (&fused, "fused") } else { (&unfused, "unfused") };
            assert_bits(&format!("{m}x{n}x{k} batch {batch}: {g:?} vs the canonical f32 sum ({kind} fma)"), want, &got);
        }
    }
}

#[test]
fn split_k_is_chosen_for_few_rows_and_refuses_what_it_cannot_run() {
    use wgpu::DeviceType::{Cpu, DiscreteGpu, IntegratedGpu};
    let few = Matmul::new(SPLITK_MAX_ROWS, 64, 40);
    assert_eq!(GemmKernel::choose(&few, DiscreteGpu), GemmKernel::SplitK);
    assert_eq!(GemmKernel::choose(&few, IntegratedGpu), GemmKernel::SplitK);
    assert_eq!(GemmKernel::choose(&Matmul { b_f16: true, ..few }, DiscreteGpu), GemmKernel::SplitKF16);
    // A CPU adapter keeps the barrier-free vec4 kernels: 8×8 blocks from three rows on.
    assert_eq!(GemmKernel::choose(&few, Cpu), GemmKernel::Vec4Wide);
    assert_eq!(GemmKernel::choose(&Matmul::new(SPLITK_MAX_ROWS + 1, 64, 40), DiscreteGpu), GemmKernel::Vec4);
    assert_eq!(GemmKernel::choose(&Matmul::new(64, 64, 40), DiscreteGpu), GemmKernel::TiledVec4);
    assert_eq!(GemmKernel::choose(&Matmul::new(64, 64, 40), Cpu), GemmKernel::Vec4Wide);
    assert_eq!(GemmKernel::choose(&Matmul::new(3, 64, 40), Cpu), GemmKernel::Vec4Wide);
    assert_eq!(GemmKernel::choose(&Matmul { b_f16: true, ..Matmul::new(3, 64, 40) }, Cpu), GemmKernel::Vec4WideF16);
    assert_eq!(GemmKernel::choose(&Matmul::new(2, 64, 40), Cpu), GemmKernel::Vec4);
    // 16×16 blocks from a whole tile of rows (8 row lanes × 16 for 128 columns) and K = 64 on.
    assert_eq!(GemmKernel::choose(&Matmul::new(128, 128, 64), Cpu), GemmKernel::Vec4Wide16);
    assert_eq!(GemmKernel::choose(&Matmul { b_f16: true, ..Matmul::new(128, 128, 64) }, Cpu), GemmKernel::Vec4Wide16F16);
    assert_eq!(GemmKernel::choose(&Matmul::new(127, 128, 64), Cpu), GemmKernel::Vec4Wide);
    assert_eq!(GemmKernel::choose(&Matmul::new(128, 128, 63), Cpu), GemmKernel::Vec4Wide);
    assert_eq!(GemmKernel::choose(&Matmul::new(64, 16, 40), Cpu), GemmKernel::Vec4);
    assert_eq!(GemmKernel::choose(&Matmul { normalize_rows: true, ..Matmul::new(2, 64, 40) }, DiscreteGpu), GemmKernel::Vec4);
    // n not a multiple of 4: no vec4 reads, so the skinny kernel.
    assert_eq!(GemmKernel::choose(&Matmul::new(2, 63, 40), DiscreteGpu), GemmKernel::Skinny);
    let c = shared_context();
    let (a, b, out) = (upload(&c, &[0.0; 17 * 40]), upload(&c, &[0.0; 40 * 64]), upload(&c, &[0.0; 17 * 64]));
    let err = Matmul::new(17, 64, 40).op_with(GemmKernel::SplitK, &c, &a, &b, None, &out).err().expect("17 rows").to_string();
    assert!(err.contains("up to 16 rows"), "{err}");
    let err = Matmul::new(2, 63, 40).op_with(GemmKernel::SplitK, &c, &a, &b, None, &out).err().expect("n = 63").to_string();
    assert!(err.contains("vec4"), "{err}");
}

#[test]
fn fused_row_normalisation_matches_the_reference() {
    let mut rng = Rng::new(7);
    let c = shared_context();
    // Rows that do and do not fill the 8-row blocks; depths odd and even; a zero row.
    for (rows, d, s) in [(1, 1, 4), (7, 13, 8), (65, 33, 16), (130, 384, 128), (9, 2, 12)] {
        let mut x = rng.vec(rows * d, 3.0);
        x[..d].iter_mut().for_each(|v| *v = 0.0);
        let mu = rng.vec(d * s, 1.0);
        let mm = Matmul { alpha: 2.5, normalize_rows: true, ..plain(rows, s, d, 1, MatrixView::row_major(rows, d)) };
        let (xb, mub, lb) = (upload(&c, &x), upload(&c, &mu), upload(&c, &vec![0.0; rows * s]));
        let got = run_and_read(&c, &[&mm.op(&c, &xb, &mub, None, &lb).unwrap()], &lb, rows * s);
        let want = gemm(&mm, &x, &mu, None, rows * s);
        // Unit rows times O(1) columns, times 2.5: |L| ≤ 2.5·√d; the norm adds a length-d sum.
        assert_close(&format!("normalised rows {rows}x{d}x{s}"), &got, &want, f32_tol(d, 2.5 * (d as f64).sqrt()) * 3.0);
        // The tiled vec4 kernel fuses it too, summing the squares in the same order.
        let tb = upload(&c, &vec![0.0; rows * s]);
        let tiled = run_and_read(&c, &[&mm.op_with(GemmKernel::TiledVec4, &c, &xb, &mub, None, &tb).unwrap()], &tb, rows * s);
        assert_bits(&format!("normalised rows {rows}x{d}x{s}: TiledVec4 vs Vec4"), &got, &tiled);
        for g in [GemmKernel::Vec4, GemmKernel::Vec4Wide, GemmKernel::Vec4Wide16] {
            let rb = upload(&c, &vec![0.0; rows * s]);
            let lanes = run_and_read(&c, &[&mm.op_with(g, &c, &xb, &mub, None, &rb).unwrap()], &rb, rows * s);
            assert_bits(&format!("normalised rows {rows}x{d}x{s}: {g:?} vs the chosen kernel"), &got, &lanes);
        }
        let err = mm.op_with(GemmKernel::Tiled, &c, &xb, &mub, None, &lb).err().expect("tiled cannot normalise").to_string();
        assert!(err.contains("vec4"), "{err}");
    }
}

#[test]
fn a_view_past_its_buffer_is_refused_naming_the_operand() {
    let c = shared_context();
    // 8 rows of A in groups of 2, each group 4 rows apart: A must hold 3·4·5 + 1·5 + 5 = 70 values.
    let mm = plain(8, 4, 5, 1, MatrixView::grouped(2, 4 * 5, 5, 0));
    assert_eq!(mm.spans(), [70, 20, 32, 0]);
    let (short, b, out) = (upload(&c, &[0.0; 69]), upload(&c, &[0.0; 20]), upload(&c, &[0.0; 32]));
    let err = mm.op(&c, &short, &b, None, &out).err().expect("A one element short").to_string();
    assert!(err.contains("A needs 280 bytes") && err.contains("276"), "{err}");
    let a = upload(&c, &[0.0; 70]);
    let err = mm.op(&c, &a, &b, None, &b).err().expect("C too short").to_string();
    assert!(err.contains("C needs 128 bytes"), "{err}");
    assert!(mm.op(&c, &a, &b, None, &out).is_ok());
}

#[test]
fn host_constants_match_the_wgsl() {
    let source = super::SPLITK_KERNELS[0].source;
    let module = naga::front::wgsl::parse_str(source).unwrap_or_else(|e| panic!("{}", e.emit_to_string(source)));
    let value = |name: &str| {
        let (_, c) = module.constants.iter().find(|(_, c)| c.name.as_deref() == Some(name)).unwrap_or_else(|| panic!("no const {name}"));
        match module.global_expressions[c.init] {
            naga::Expression::Literal(naga::Literal::U32(v)) => v as usize,
            ref e => panic!("{name} is {e:?}, not a u32 literal"),
        }
    };
    assert_eq!(value("KC"), super::SUM_CHUNK, "KC in gemm_common.wgsl and SUM_CHUNK");
    assert_eq!(value("SPLIT_WG"), super::SPLITK_WORKGROUP, "SPLIT_WG in gemm_splitk.wgsl and SPLITK_WORKGROUP");
    assert_eq!(value("ROWS"), 1);
}

#[test]
fn the_f16_kernels_give_the_same_bits() {
    let c = shared_context();
    if !c.features.contains(wgpu::Features::SHADER_F16) {
        eprintln!("no shader-f16 on this adapter: nothing to compare");
        return;
    }
    let mut rng = Rng::new(13);
    for (m, n, k) in [(1, 8, 70), (3, 132, 64), (16, 4, 33), (70, 68, 100)] {
        let mm = Matmul { b_f16: true, bias_batch_stride: Some(n), ..plain(m, n, k, 2, MatrixView::row_major(m, k)) };
        let (a, b, bias) =
            (upload(&c, &rng.vec(2 * m * k, 1.0)), upload_f16(&c, &rng.vec(2 * k * n, 1.0)), upload(&c, &rng.vec(2 * n, 1.0)));
        let run = |g: GemmKernel| {
            let out = upload(&c, &vec![0.0; 2 * m * n]);
            run_and_read(&c, &[&mm.op_with(g, &c, &a, &b, Some(&bias), &out).unwrap()], &out, 2 * m * n)
        };
        let vec4 = run(GemmKernel::Vec4F16);
        if m <= SPLITK_MAX_ROWS {
            assert_bits(&format!("{m}x{n}x{k}: Vec4F16 vs SplitKF16"), &vec4, &run(GemmKernel::SplitKF16));
        }
        assert_bits(&format!("{m}x{n}x{k}: Vec4F16 vs TiledVec4F16"), &vec4, &run(GemmKernel::TiledVec4F16));
        assert_bits(&format!("{m}x{n}x{k}: Vec4F16 vs Vec4WideF16"), &vec4, &run(GemmKernel::Vec4WideF16));
        assert_bits(&format!("{m}x{n}x{k}: Vec4F16 vs Vec4Wide16F16"), &vec4, &run(GemmKernel::Vec4Wide16F16));
    }
}

#[test]
fn panel_stored_b_gives_the_bits_of_row_major_b() {
    // The expert kernels' panel layout is a change of storage only: every kernel, every bit.
    let mut rng = Rng::new(17);
    let c = shared_context();
    for (m, n, k, batch) in [(1, 32, 7, 3), (2, 96, 65, 2), (9, 64, 40, 1), (70, 32, 33, 2)] {
        let plain_mm = Matmul {
            bias_batch_stride: Some(n),
            activation: Activation::Gelu(Gelu::Erf),
            ..plain(m, n, k, batch, MatrixView::row_major(m, k))
        };
        let panel_mm = Matmul { b: MatrixView::panels(k, n), ..plain_mm };
        assert_eq!(panel_mm.spans()[1], batch * k * n, "panels hold exactly the matrix");
        let (a, b, bias) = (rng.vec(batch * m * k, 1.0), rng.vec(batch * k * n, 1.0), rng.vec(batch * n, 1.0));
        let packed = super::pack_panels(&b, batch, k, n);
        // One panel is the row-major matrix itself; more are a real reordering.
        assert_eq!(packed == b, n == super::PANEL, "{m}x{n}x{k}: packing");
        let (ab, bb, pb, biasb) = (upload(&c, &a), upload(&c, &b), upload(&c, &packed), upload(&c, &bias));
        let want = gemm(&plain_mm, &a, &b, Some(&bias), batch * m * n);
        assert_close(&format!("{m}x{n}x{k} panels, f64"), &gemm(&panel_mm, &a, &packed, Some(&bias), batch * m * n), &want, 1e-12);
        for g in [
            GemmKernel::Tiled,
            GemmKernel::Skinny,
            GemmKernel::Naive,
            GemmKernel::Vec4,
            GemmKernel::SplitK,
            GemmKernel::TiledVec4,
            GemmKernel::Vec4Wide,
            GemmKernel::Vec4Wide16,
        ] {
            if g == GemmKernel::SplitK && m > SPLITK_MAX_ROWS {
                continue;
            }
            let run = |mm: &Matmul, b: &wgpu::Buffer| {
                let out = upload(&c, &vec![0.0; batch * m * n]);
                run_and_read(&c, &[&mm.op_with(g, &c, &ab, b, Some(&biasb), &out).unwrap()], &out, batch * m * n)
            };
            assert_bits(&format!("{m}x{n}x{k} batch {batch}: {g:?} on panels vs row-major"), &run(&plain_mm, &bb), &run(&panel_mm, &pb));
        }
    }
}

#[test]
fn b_split_over_buffers_gives_the_bits_of_one_buffer() {
    // Expert kernels split over storage bindings are read by one dispatch: batch entry z from buffer
    // z / b_group. Same bits as one buffer holding them all, on every vec4 kernel.
    let mut rng = Rng::new(19);
    let c = shared_context();
    for (m, n, k, batch, group) in [(1, 64, 40, 7, 2), (3, 32, 33, 5, 2), (20, 8, 70, 4, 1), (70, 36, 17, 9, 3)] {
        let whole =
            Matmul { batch, b: MatrixView::panels(k, n), bias_batch_stride: Some(n), ..plain(m, n, k, batch, MatrixView::row_major(m, k)) };
        let whole = if n % super::PANEL == 0 { whole } else { Matmul { b: MatrixView::row_major(k, n), ..whole } };
        let split = Matmul { b_group: Some(group), ..whole };
        assert_eq!(split.b_buffers(), batch.div_ceil(group));
        let (a, b, bias) = (rng.vec(batch * m * k, 1.0), rng.vec(batch * k * n, 1.0), rng.vec(batch * n, 1.0));
        let (ab, bb, biasb) = (upload(&c, &a), upload(&c, &b), upload(&c, &bias));
        let parts: Vec<wgpu::Buffer> = b.chunks(group * k * n).map(|part| upload(&c, part)).collect();
        let parts: Vec<&wgpu::Buffer> = parts.iter().collect();
        for g in [GemmKernel::Vec4, GemmKernel::SplitK, GemmKernel::TiledVec4, GemmKernel::Vec4Wide, GemmKernel::Vec4Wide16] {
            if g == GemmKernel::SplitK && m > SPLITK_MAX_ROWS {
                continue;
            }
            let run = |mm: &Matmul, bs: &[&wgpu::Buffer]| {
                let out = upload(&c, &vec![0.0; batch * m * n]);
                run_and_read(&c, &[&mm.op_split_with(g, &c, &ab, bs, Some(&biasb), &out).unwrap()], &out, batch * m * n)
            };
            assert_bits(&format!("{m}x{n}x{k} batch {batch} in groups of {group}: {g:?}"), &run(&whole, &[&bb]), &run(&split, &parts));
        }
        // The wrong number of buffers, or a kernel that reads one buffer, is refused.
        let out = upload(&c, &vec![0.0; batch * m * n]);
        assert!(split.op_split_with(GemmKernel::Vec4, &c, &ab, &parts[..1], Some(&biasb), &out).is_err());
        if parts.len() > 1 {
            let err =
                split.op_split_with(GemmKernel::Tiled, &c, &ab, &parts, Some(&biasb), &out).err().expect("tiled reads one B").to_string();
            assert!(err.contains("several buffers"), "{err}");
        }
    }
}

#[test]
fn an_epilogue_compiled_for_its_flags_gives_the_bits_of_one_read_from_the_uniform() {
    // CPU adapters get each GEMM pipeline specialised for its bias, activation, residual and
    // normalisation (`SWITCHES`); GPUs read them from the uniform. Same bits, every kernel and flag.
    use crate::{GpuContext, GpuOptions};
    let context =
        |kind| pollster::block_on(GpuContext::with_options(GpuOptions { kernels_for: Some(kind), ..Default::default() })).unwrap();
    let (cpu, gpu) = (context(wgpu::DeviceType::Cpu), context(wgpu::DeviceType::DiscreteGpu));
    let (m, n, k, batch) = (16, 36, 70, 2);
    let mut rng = Rng::new(23);
    let (a, b, bias, c0) = (rng.vec(batch * m * k, 1.0), rng.vec(batch * k * n, 1.0), rng.vec(batch * n, 1.0), rng.vec(batch * m * n, 1.0));
    let kernels = [
        GemmKernel::Naive,
        GemmKernel::Skinny,
        GemmKernel::Tiled,
        GemmKernel::Vec4,
        GemmKernel::SplitK,
        GemmKernel::TiledVec4,
        GemmKernel::Vec4Wide,
        GemmKernel::Vec4Wide16,
    ];
    let (mut epilogues, mut pairs, mut used) = (0, std::collections::HashSet::new(), std::collections::HashSet::new());
    for with_bias in [false, true] {
        for activation in [Activation::None, Activation::Gelu(Gelu::Tanh), Activation::Gelu(Gelu::Erf)] {
            for (accumulate, normalize_rows) in [(false, false), (true, false), (false, true)] {
                epilogues += 1;
                let mm = Matmul {
                    bias_batch_stride: with_bias.then_some(n),
                    activation,
                    accumulate,
                    normalize_rows,
                    ..plain(m, n, k, batch, MatrixView::row_major(m, k))
                };
                // Two kernels per epilogue, in turn (compiling all 120 pairs takes a minute here).
                let able: Vec<GemmKernel> = kernels.into_iter().filter(|g| !normalize_rows || g.normalizes_rows()).collect();
                for g in [able[epilogues % able.len()], able[(epilogues + 3) % able.len()]] {
                    pairs.insert((format!("{g:?}"), epilogues));
                    let run = |ctx: &std::sync::Arc<GpuContext>| {
                        let (ab, bb, biasb, cb) = (upload(ctx, &a), upload(ctx, &b), upload(ctx, &bias), upload(ctx, &c0));
                        let op = mm.op_with(g, ctx, &ab, &bb, with_bias.then_some(&biasb), &cb).unwrap();
                        run_and_read(ctx, &[&op], &cb, batch * m * n)
                    };
                    used.insert(format!("{g:?}"));
                    let label = format!("{g:?}, bias {with_bias}, {activation:?}, accumulate {accumulate}, normalised {normalize_rows}");
                    assert_bits(&label, &run(&gpu), &run(&cpu));
                }
            }
        }
    }
    // One pipeline per kernel on the GPU side; one per kernel and epilogue on the CPU side.
    assert_eq!(gpu.pipelines.len(), used.len());
    assert_eq!(cpu.pipelines.len(), pairs.len());
}
