//! Each WGSL kernel alone against its f64 reference, at shapes that do and do not divide the tiles.

use softmoe::kernels::matmul::{Activation, Matmul, MatrixView};
use softmoe::kernels::{combine, combine_softmax, dispatch_softmax, expert_mlp, l2_normalize, logits, slot_inputs};
use softmoe::reference as r;
use softmoe::Gelu;

use crate::common::{assert_bits, assert_close, ctx, random_layer, run_and_read, run_and_read_on, to_f64, upload, upload_on, Rng};

/// f32 kernels against f64: a few ulps times the accumulation length, on O(1) data.
fn tol(k: usize) -> f64 {
    1e-6 * (1.0 + (k as f64).sqrt())
}

#[test]
fn l2_normalize_rows_and_columns() {
    let mut rng = Rng::new(1);
    for (rows, cols) in [(1, 1), (7, 13), (65, 3), (130, 67), (3, 300)] {
        let x = rng.vec(rows * cols, 2.0);
        let (src, dst) = (upload(&x), upload(&vec![0.0; x.len()]));
        let c = ctx();
        let got = run_and_read(&[&l2_normalize::rows_op(&c, &src, &dst, rows, cols).unwrap()], &dst, x.len());
        assert_close(&format!("rows {rows}x{cols}"), &got, &r::l2_normalize(&to_f64(&x), rows, cols, cols, 1), tol(cols));
        let got = run_and_read(&[&l2_normalize::columns_op(&c, &src, &dst, rows, cols).unwrap()], &dst, x.len());
        assert_close(&format!("cols {rows}x{cols}"), &got, &r::l2_normalize(&to_f64(&x), cols, rows, 1, cols), tol(rows));
    }
}

#[test]
fn softmaxes_over_tokens_and_over_slots() {
    let mut rng = Rng::new(2);
    for (b, m, s) in [(1, 1, 1), (1, 4, 2), (3, 17, 5), (2, 300, 1), (5, 49, 130)] {
        let l = rng.vec(b * m * s, 30.0);
        let (src, dst) = (upload(&l), upload(&vec![0.0; l.len()]));
        let c = ctx();
        let got = run_and_read(&[&dispatch_softmax::op(&c, &src, &dst, b, m, s).unwrap()], &dst, l.len());
        let lf = to_f64(&l);
        let want: Vec<f64> = (0..b).flat_map(|e| r::dispatch_softmax(&lf[e * m * s..(e + 1) * m * s], m, s)).collect();
        assert_close(&format!("dispatch {b}x{m}x{s}"), &got, &want, 1e-6);
        let got = run_and_read(&[&combine_softmax::op(&c, &src, &dst, b * m, s).unwrap()], &dst, l.len());
        assert_close(&format!("combine {b}x{m}x{s}"), &got, &r::combine_softmax(&lf, b * m, s), 1e-6);
    }
}

/// The reference of a Matmul description: plain loops over its views.
fn matmul_reference(mm: &Matmul, a: &[f32], b: &[f32], bias: Option<&[f32]>, c_len: usize) -> Vec<f64> {
    let at = |v: &MatrixView, z: usize, row: usize, col: usize| {
        z * v.batch_stride + (row / v.row_group) * v.group_stride + (row % v.row_group) * v.row_stride + col * v.col_stride
    };
    let mut c = vec![0.0; c_len];
    for z in 0..mm.batch {
        for i in 0..mm.m {
            for j in 0..mm.n {
                let acc: f64 = (0..mm.k).map(|t| a[at(&mm.a, z, i, t)] as f64 * b[at(&mm.b, z, t, j)] as f64).sum();
                let mut v = mm.alpha as f64 * acc;
                if let (Some(bias), Some(bs)) = (bias, mm.bias_batch_stride) {
                    v += bias[z * bs + j] as f64;
                }
                if let Activation::Gelu(g) = mm.activation {
                    v = r::gelu(v, g);
                }
                c[at(&mm.c, z, i, j)] = v;
            }
        }
    }
    c
}

#[test]
fn matmul_over_plain_transposed_and_grouped_views() {
    let mut rng = Rng::new(3);
    let shapes = [(1, 1, 1, 1), (63, 65, 17, 2), (64, 64, 64, 1), (129, 3, 70, 3), (5, 130, 1, 2), (2, 7, 200, 4)];
    for (i, &(m, n, k, batch)) in shapes.iter().enumerate() {
        let views = [
            (MatrixView::row_major(m, k), m * k),
            (MatrixView::transposed(k, m), m * k),
            // m rows in groups of 3 rows, each group 5 rows apart: the expert-slot layout.
            (MatrixView::grouped(3, 5 * k, k, 2 * k), 0),
        ];
        for (vi, (av, _)) in views.iter().enumerate() {
            let act = [Activation::None, Activation::Gelu(Gelu::Tanh), Activation::Gelu(Gelu::Erf)][(i + vi) % 3];
            let mm = Matmul {
                m,
                n,
                k,
                batch,
                a: *av,
                b: MatrixView::row_major(k, n),
                c: MatrixView::row_major(m, n),
                alpha: if vi == 1 { 1.7 } else { 1.0 },
                bias_batch_stride: (vi != 0).then_some(n),
                activation: act,
                accumulate: false,
                normalize_rows: false,
                b_f16: false,
            };
            let a_len = (batch - 1) * av.batch_stride
                + ((m - 1) / av.row_group) * av.group_stride
                + ((m - 1) % av.row_group) * av.row_stride
                + (k - 1) * av.col_stride
                + 1;
            let a = rng.vec(a_len, 1.0);
            let b = rng.vec(batch * k * n, 1.0);
            let bias = rng.vec(batch * n, 0.5);
            let (ab, bb, biasb, cb) = (upload(&a), upload(&b), upload(&bias), upload(&vec![0.0; batch * m * n]));
            let op = mm.op(&ctx(), &ab, &bb, mm.bias_batch_stride.map(|_| &biasb), &cb).unwrap();
            let got = run_and_read(&[&op], &cb, batch * m * n);
            let want = matmul_reference(&mm, &a, &b, mm.bias_batch_stride.map(|_| bias.as_slice()), batch * m * n);
            assert_close(&format!("matmul {m}x{n}x{k} batch {batch} view {vi} {act:?}"), &got, &want, tol(k) * 2.0);
        }
    }
}

#[test]
fn soft_moe_stages_match_their_references() {
    let mut rng = Rng::new(4);
    for (b, m, d, n, p, h) in [(1, 1, 1, 1, 1, 1), (2, 5, 3, 2, 3, 7), (3, 67, 33, 5, 2, 65), (1, 49, 64, 8, 2, 128)] {
        let s = n * p;
        let w = random_layer(&mut rng, d, n, p, h, 3.0, Gelu::Tanh, true);
        let x = rng.vec(b * m * d, 1.0);
        let c = ctx();

        // Logits over all rows of the batch at once.
        let mu = r::slot_params(&w);
        let mu32: Vec<f32> = mu.iter().map(|&v| v as f32).collect();
        let (xb, mub, lb) = (upload(&x), upload(&mu32), upload(&vec![0.0; b * m * s]));
        let got = run_and_read(&[&logits::logits(b * m, d, s, w.scale).op(&c, &xb, &mub, None, &lb).unwrap()], &lb, b * m * s);
        assert_close("logits", &got, &r::logits(&to_f64(&x), &mu, w.scale as f64, b * m, d, s), 3.0 * tol(d));

        // Slot inputs and combine, per example.
        let dmat = rng.vec(b * m * s, 1.0);
        let (db, xsb) = (upload(&dmat), upload(&vec![0.0; b * s * d]));
        let got = run_and_read(&[&slot_inputs::slot_inputs(b, m, s, d).op(&c, &db, &xb, None, &xsb).unwrap()], &xsb, b * s * d);
        let (xf, df) = (to_f64(&x), to_f64(&dmat));
        let want: Vec<f64> =
            (0..b).flat_map(|e| r::slot_inputs(&df[e * m * s..(e + 1) * m * s], &xf[e * m * d..(e + 1) * m * d], m, s, d)).collect();
        assert_close("slot inputs", &got, &want, tol(m));

        let ys = rng.vec(b * s * d, 1.0);
        let (ysb, yb) = (upload(&ys), upload(&vec![0.0; b * m * d]));
        let got = run_and_read(&[&combine::combine(b, m, s, d, false).op(&c, &db, &ysb, None, &yb).unwrap()], &yb, b * m * d);
        let ysf = to_f64(&ys);
        let want: Vec<f64> =
            (0..b).flat_map(|e| r::combine(&df[e * m * s..(e + 1) * m * s], &ysf[e * s * d..(e + 1) * s * d], m, s, d)).collect();
        assert_close("combine", &got, &want, tol(s));

        // Both expert Dense layers in sequence, slot j through expert j / p.
        for gelu in [Gelu::Tanh, Gelu::Erf] {
            let w = softmoe::SoftMoeWeights { gelu, ..w.clone() };
            let (hid, out) = (upload(&vec![0.0; b * s * h]), upload(&vec![0.0; b * s * d]));
            // Experts in two groups with their own weight buffers, as the layer splits them.
            let split = n / 2;
            let mut ops = Vec::new();
            let mut keep = Vec::new();
            for g in [0..split, split..n] {
                if g.is_empty() {
                    continue;
                }
                let (w0, b0) = (upload(&w.w0[g.start * d * h..g.end * d * h]), upload(&w.b0[g.start * h..g.end * h]));
                let (w1, b1) = (upload(&w.w1[g.start * h * d..g.end * h * d]), upload(&w.b1[g.start * d..g.end * d]));
                ops.push(expert_mlp::dense0(b, n, p, d, h, g.clone(), gelu).op(&c, &xsb, &w0, Some(&b0), &hid).unwrap());
                ops.push(expert_mlp::dense1(b, n, p, d, h, g).op(&c, &hid, &w1, Some(&b1), &out).unwrap());
                keep.push((w0, b0, w1, b1));
            }
            let xs_in = run_and_read(&[], &xsb, b * s * d);
            let got = run_and_read(&ops.iter().collect::<Vec<_>>(), &out, b * s * d);
            let want: Vec<f64> = (0..b).flat_map(|e| r::expert_mlp(&xs_in[e * s * d..(e + 1) * s * d], &w)).collect();
            assert_close(&format!("expert MLP {gelu:?}"), &got, &want, 2.0 * tol(d + h));
        }
    }
}

#[test]
fn tiled_skinny_and_naive_gemms_agree_bit_for_bit() {
    use softmoe::kernels::matmul::GemmKernel;
    let mut rng = Rng::new(5);
    // n a multiple of 4 everywhere, so the vec4 kernel can run every case.
    for (m, n, k) in [(1, 4, 1), (3, 68, 33), (16, 64, 100), (40, 8, 17), (130, 132, 65), (9, 260, 7)] {
        let mm = Matmul {
            m,
            n,
            k,
            batch: 2,
            a: MatrixView::row_major(m, k),
            b: MatrixView::row_major(k, n),
            c: MatrixView::row_major(m, n),
            alpha: 1.0,
            bias_batch_stride: Some(n),
            activation: Activation::Gelu(Gelu::Tanh),
            accumulate: false,
            normalize_rows: false,
            b_f16: false,
        };
        let (a, b, bias) = (upload(&rng.vec(2 * m * k, 1.0)), upload(&rng.vec(2 * k * n, 1.0)), upload(&rng.vec(2 * n, 1.0)));
        let outs: Vec<Vec<f64>> = [GemmKernel::Tiled, GemmKernel::Skinny, GemmKernel::Naive, GemmKernel::Vec4]
            .iter()
            .map(|&g| {
                let c = upload(&vec![0.0; 2 * m * n]);
                let op = mm.op_with(g, &ctx(), &a, &b, Some(&bias), &c).unwrap();
                run_and_read(&[&op], &c, 2 * m * n)
            })
            .collect();
        assert_bits(&format!("{m}x{n}x{k}: tiled vs skinny"), &outs[0], &outs[1]);
        assert_bits(&format!("{m}x{n}x{k}: tiled vs naive"), &outs[0], &outs[2]);
        assert_bits(&format!("{m}x{n}x{k}: tiled vs vec4"), &outs[0], &outs[3]);
    }
}

/// A device with subgroups enabled, or a failure naming the adapter.
fn subgroup_ctx() -> std::sync::Arc<softmoe::GpuContext> {
    let c = pollster::block_on(softmoe::GpuContext::new()).unwrap();
    assert!(
        c.features.contains(wgpu::Features::SUBGROUP),
        "adapter {:?} offers no subgroups: the subgroup reduction is untested",
        c.info.name
    );
    c
}

#[test]
fn fused_router_softmax_matches_both_references_with_either_reduction() {
    use softmoe::kernels::router_softmax::{self, RowReduction};
    let mut rng = Rng::new(6);
    let c = ctx();
    // The subgroup path is tested on its own device when the shared one hides subgroups (as the
    // browser-limits run does). Only under wgpu's strict WebGPU compliance, where WebGPU itself has no
    // subgroups, is it left to the plain run; anywhere else an adapter without them is a failure:
    // every Vulkan 1.1, Metal and DX12 adapter has them, so missing ones mean a broken set-up.
    let strict_webgpu = std::env::var_os("WGPU_STRICT_WEBGPU_COMPLIANCE").is_some();
    let with_subgroups = if c.features.contains(wgpu::Features::SUBGROUP) {
        Some(c.clone())
    } else if strict_webgpu {
        eprintln!("strict WebGPU compliance: no subgroups; the subgroup reduction is tested by the plain run");
        None
    } else {
        Some(subgroup_ctx())
    };
    let without =
        pollster::block_on(softmoe::GpuContext::with_options(softmoe::GpuOptions { no_subgroups: true, ..Default::default() })).unwrap();
    let one = upload(&[0.0]);
    let refused =
        router_softmax::op_with(RowReduction::Subgroup, &without, &one, &one, &one, 1, 1, 1).err().expect("subgroups without the feature");
    assert!(refused.to_string().contains("`subgroups`"), "{refused}");
    let mut reductions = vec![(RowReduction::Shared, c.clone())];
    reductions.extend(with_subgroups.map(|s| (RowReduction::Subgroup, s)));
    // Slot counts below, at and past 64 (the column step) and 256 (the workgroup), and the largest.
    for (b, m, s) in [(1, 1, 1), (1, 4, 2), (3, 17, 5), (2, 300, 1), (5, 49, 130), (1, 196, 128), (2, 3, 257), (1, 9, 1024)] {
        let l = rng.vec(b * m * s, 30.0);
        let lf = to_f64(&l);
        let want_d: Vec<f64> = (0..b).flat_map(|e| r::dispatch_softmax(&lf[e * m * s..(e + 1) * m * s], m, s)).collect();
        let want_c = r::combine_softmax(&lf, b * m, s);
        for (red, dev) in &reductions {
            let (red, dev) = (*red, dev.clone());
            let (src, dm, cm) = (upload_on(&dev, &l), upload_on(&dev, &vec![0.0; l.len()]), upload_on(&dev, &vec![0.0; l.len()]));
            let op = router_softmax::op_with(red, &dev, &src, &dm, &cm, b, m, s).unwrap();
            let got_d = run_and_read_on(&dev, &[&op], &dm, l.len());
            let got_c = run_and_read_on(&dev, &[], &cm, l.len());
            assert_close(&format!("{red:?} dispatch {b}x{m}x{s}"), &got_d, &want_d, 1e-6);
            assert_close(&format!("{red:?} combine {b}x{m}x{s}"), &got_c, &want_c, 1e-6);
        }
    }
    let b = upload(&[0.0]);
    let err = router_softmax::op(&c, &b, &b, &b, 1, 2, router_softmax::MAX_SLOTS + 1).err().expect("too many slots").to_string();
    assert!(err.contains("slots"), "{err}");
}

#[test]
fn logits_gemm_with_fused_token_normalisation() {
    use softmoe::kernels::matmul::GemmKernel;
    let mut rng = Rng::new(7);
    let c = ctx();
    // Rows that do and do not fill the 8-row blocks; depths odd and even; a zero token.
    for (rows, d, s) in [(1, 1, 4), (7, 13, 8), (65, 33, 16), (130, 384, 128), (9, 2, 12)] {
        let mut x = rng.vec(rows * d, 3.0);
        x[..d].iter_mut().for_each(|v| *v = 0.0);
        let mu = rng.vec(d * s, 1.0);
        let mm = Matmul { normalize_rows: true, ..logits::logits(rows, d, s, 2.5) };
        let (xb, mub, lb) = (upload(&x), upload(&mu), upload(&vec![0.0; rows * s]));
        let got = run_and_read(&[&mm.op(&c, &xb, &mub, None, &lb).unwrap()], &lb, rows * s);
        let xn = r::l2_normalize(&to_f64(&x), rows, d, d, 1);
        assert_close(&format!("normalised logits {rows}x{d}x{s}"), &got, &r::logits(&xn, &to_f64(&mu), 2.5, rows, d, s), 3.0 * tol(d));
        let err = mm.op_with(GemmKernel::Tiled, &c, &xb, &mub, None, &lb).err().expect("tiled cannot normalise").to_string();
        assert!(err.contains("vec4"), "{err}");
    }
}

#[test]
fn layer_takes_the_separate_router_kernels_where_the_fused_ones_do_not_fit() {
    // 1030 slots: neither vec4 logits (normalisation apart) nor the fused softmax; 1028: vec4 logits
    // with normalisation, separate softmaxes; 12: both fused.
    let mut rng = Rng::new(8);
    for (n, p) in [(515, 2), (257, 4), (6, 2)] {
        let (b, m, d, h) = (2, 5, 6, 3);
        let w = random_layer(&mut rng, d, n, p, h, 4.0, Gelu::Tanh, true);
        let x = softmoe::Tensor::new(vec![b, m, d], rng.vec(b * m * d, 1.0)).unwrap();
        let got = crate::common::Backend::Gpu.forward(&w, &x);
        let want = crate::common::Backend::Cpu.forward(&w, &x);
        assert_close(&format!("D, {} slots", n * p), &got.dispatch, &want.dispatch, 1e-6);
        assert_close(&format!("C, {} slots", n * p), &got.combine, &want.combine, 1e-6);
        assert_close(&format!("y, {} slots", n * p), &got.y, &want.y, crate::common::f32_tol(n * p, crate::common::max_abs("y", &want.y)));
    }
}
