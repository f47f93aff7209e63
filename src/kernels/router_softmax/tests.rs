//! The fused router softmax with either row reduction against its f64 reference.

use std::sync::Arc;

use super::reference::router_softmax;
use super::{op, op_with, RowReduction, MAX_SLOTS};
use crate::gpu::{GpuContext, GpuOptions};
use crate::random::Rng;
use crate::testing::{assert_close, f32_tol, run_and_read, shared_context, to_f64, upload};

/// A device with subgroups enabled, or a failure naming the adapter.
fn subgroup_ctx() -> Arc<GpuContext> {
    let c = pollster::block_on(GpuContext::new()).unwrap();
    assert!(
        c.features.contains(wgpu::Features::SUBGROUP),
        "adapter {:?} offers no subgroups: the subgroup reduction is untested",
        c.info.name
    );
    c
}

#[test]
fn matches_the_reference_with_either_reduction() {
    let mut rng = Rng::new(6);
    let c = shared_context();
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
    let without = pollster::block_on(GpuContext::with_options(GpuOptions { no_subgroups: true, ..Default::default() })).unwrap();
    let one = upload(&without, &[0.0]);
    let refused = op_with(RowReduction::Subgroup, &without, &one, &one, &one, 1, 1, 1, 1).err().expect("subgroups without the feature");
    assert!(refused.to_string().contains("`subgroups`"), "{refused}");
    let mut reductions = vec![(RowReduction::Shared, c.clone())];
    reductions.extend(with_subgroups.map(|s| (RowReduction::Subgroup, s)));
    // Slot counts below, at and past 64 (the column step) and 256 (the workgroup), and the largest.
    for (b, m, s) in [(1, 1, 1), (1, 4, 2), (3, 17, 5), (2, 300, 1), (5, 49, 130), (1, 196, 128), (2, 3, 257), (1, 9, 1024)] {
        let l = rng.vec(b * m * s, 30.0);
        let (want_d, want_c) = router_softmax(&to_f64(&l), b, m, s);
        for (red, dev) in &reductions {
            let (src, dm, cm) = (upload(dev, &l), upload(dev, &vec![0.0; l.len()]), upload(dev, &vec![0.0; l.len()]));
            // One workgroup per example, and the example spread over several (the bits must not move).
            let mut first = None;
            for parts in [1, 3, super::parts_for(b, m, wgpu::DeviceType::DiscreteGpu)] {
                let fused = op_with(*red, dev, &src, &dm, &cm, b, m, s, parts.min(m)).unwrap();
                let got_d = run_and_read(dev, &[&fused], &dm, l.len());
                let got_c = run_and_read(dev, &[], &cm, l.len());
                assert_close(&format!("{red:?} dispatch {b}x{m}x{s}"), &got_d, &want_d, f32_tol(m, 1.0));
                assert_close(&format!("{red:?} combine {b}x{m}x{s}"), &got_c, &want_c, f32_tol(s, 1.0));
                let (d0, c0) = first.get_or_insert_with(|| (got_d.clone(), got_c.clone()));
                crate::testing::assert_bits(&format!("{red:?} dispatch {b}x{m}x{s} in {parts} parts"), d0, &got_d);
                crate::testing::assert_bits(&format!("{red:?} combine {b}x{m}x{s} in {parts} parts"), c0, &got_c);
            }
        }
    }
    let b = upload(&c, &[0.0]);
    let err = op(&c, &b, &b, &b, 1, 2, MAX_SLOTS + 1).err().expect("too many slots").to_string();
    assert!(err.contains("slots"), "{err}");
}

#[test]
fn the_one_dispatch_router_gives_the_bits_of_the_logits_gemm_and_the_softmaxes() {
    use crate::kernels::gemm::{GemmKernel, Matmul};
    use crate::layers::stages;
    use crate::testing::run_and_read_f32;
    let c = shared_context();
    let mut rng = Rng::new(17);
    // (batch, tokens, d, slots, normalise): the demo router, widths and token counts off the 32-k
    // chunk and the 256 invocations, without the normalisation, one token, the largest batch.
    for (b, m, d, s, normalize) in
        [(1, 49, 64, 16, true), (2, 7, 33, 8, true), (3, 17, 12, 4, false), (4, 100, 20, 12, true), (1, 1, 3, 4, false)]
    {
        assert!(super::logits_fit(b, m, s, d));
        let scale = 1.0 + rng.uniform();
        let (x, mu) = (rng.vec(b * m * d, 1.0), rng.vec(d * s, 1.0));
        let (xb, mub) = (upload(&c, &x), upload(&c, &mu));
        let out = |len: usize| upload(&c, &vec![0.0; len]);
        let read = |ops: &[&crate::kernels::Op], buf: &wgpu::Buffer| run_and_read_f32(&c, ops, buf, b * m * s);
        // The logits GEMM (with the kernels either adapter type gets) and the softmaxes after it.
        let mm = Matmul { normalize_rows: normalize, ..stages::logits(b * m, d, s, scale) };
        let mut want = Vec::new();
        for device in [wgpu::DeviceType::Cpu, wgpu::DeviceType::DiscreteGpu] {
            let (l2, d2, c2) = (out(b * m * s), out(b * m * s), out(b * m * s));
            let gemm = mm.op_with(GemmKernel::choose(&mm, device), &c, &xb, &mub, None, &l2).unwrap();
            let soft = op(&c, &l2, &d2, &c2, b, m, s).unwrap();
            want.push((device, [read(&[&gemm, &soft], &l2), read(&[], &d2), read(&[], &c2)]));
        }
        // One workgroup per example (whose copy holds every logit), and each example split into
        // parts as either adapter type splits it, and into more parts than there are slot vec4s.
        let mut parts: Vec<usize> =
            [1, 2, 3, super::logits_parts(b, m, wgpu::DeviceType::Cpu), super::logits_parts(b, m, wgpu::DeviceType::DiscreteGpu)]
                .into_iter()
                .map(|p| p.min(m))
                .collect();
        parts.sort();
        parts.dedup();
        let mut whole_logits = None;
        for parts in parts {
            let (lb, db, cb) = (out(parts * b * m * s), out(b * m * s), out(b * m * s));
            let fused = super::logits_op(&c, &xb, &mub, &lb, &db, &cb, (b, m, s, d), parts, normalize, scale).unwrap();
            let got = [read(&[&fused], &lb), read(&[], &db), read(&[], &cb)];
            for (device, want) in &want {
                let checked = if parts == 1 { 0 } else { 1 };
                for (what, (g, w)) in ["logits", "dispatch", "combine"].iter().zip(got.iter().zip(want)).skip(checked) {
                    crate::testing::assert_bits(
                        &format!("{b}x{m}x{d}x{s} {what} in {parts} parts: one dispatch against the {device:?} GEMM"),
                        g,
                        w,
                    );
                }
            }
            whole_logits.get_or_insert(got[0].clone());
        }
        let got = [whole_logits.unwrap()];
        // And the f64 reference of the logits.
        let xf = to_f64(&x);
        let want: Vec<f64> = (0..b * m)
            .flat_map(|r| {
                let row = &xf[r * d..(r + 1) * d];
                let norm = if normalize { 1.0 / (row.iter().map(|v| v * v).sum::<f64>() + 1e-6).sqrt() } else { 1.0 };
                let mu = &mu;
                (0..s).map(move |j| scale as f64 * norm * (0..d).map(|k| row[k] * mu[k * s + j] as f64).sum::<f64>())
            })
            .collect();
        assert_close(&format!("{b}x{m}x{d}x{s} logits against f64"), &to_f64(&got[0]), &want, f32_tol(d, 4.0 * d as f64));
    }
    let one = upload(&c, &[0.0]);
    let err = super::logits_op(&c, &one, &one, &one, &one, &one, (5, 1, 1, 1), 1, true, 1.0).err().expect("too large a batch").to_string();
    assert!(err.contains("examples"), "{err}");
    let err = super::logits_op(&c, &one, &one, &one, &one, &one, (1, 2, 6, 2), 1, true, 1.0)
        .err()
        .expect("slots not a multiple of 4")
        .to_string();
    assert!(err.contains("multiple of 4"), "{err}");
    let err = super::logits_op(&c, &one, &one, &one, &one, &one, (1, 2, 4, 2), 1, true, 1.0).err().expect("short buffers").to_string();
    assert!(err.contains("needs"), "{err}");
    let err =
        super::logits_op(&c, &one, &one, &one, &one, &one, (1, 2, 4, 2), 3, true, 1.0).err().expect("more parts than tokens").to_string();
    assert!(err.contains("parts"), "{err}");
}
