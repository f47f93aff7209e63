//! Device limits, a lost device, determinism across batch sizes, and endurance.

use softmoe::model::Vit;
use softmoe::random::random_vit;
use softmoe::{Error, Gelu, GpuContext, GpuOptions, SoftMoe, Tensor};

use crate::common::{assert_bits, assert_close, ctx, f32_tol, gpu_forward, max_abs, random_input, random_layer, vit_config, Rng};

fn example(x: &Tensor, i: usize) -> Vec<f32> {
    let len = x.shape[1] * x.shape[2];
    x.data[i * len..(i + 1) * len].to_vec()
}

#[test]
fn tiny_binding_limits_split_experts_and_chunk_batches() {
    // 64 KiB per storage binding: 40 experts of 16×64 f32 kernels (4 KiB each) need three groups,
    // and 50 examples of 49 tokens × 80 slots need several chunks.
    let small =
        pollster::block_on(GpuContext::with_options(GpuOptions { max_binding_bytes: Some(64 << 10), ..Default::default() })).unwrap();
    let mut rng = Rng::new(500);
    let w = random_layer(&mut rng, 16, 40, 2, 64, 6.0, Gelu::Tanh, true);
    let x = random_input(&mut rng, 50, 49, 16);
    let layer = pollster::block_on(SoftMoe::new(small, &w)).unwrap();
    let got = gpu_forward(&layer, &x);
    let want = softmoe::reference::soft_moe_forward(&w, &x).unwrap();
    // Splitting changes where the experts' weights live, not the arithmetic: the plain f32 bound.
    assert_close("y under 64 KiB bindings", &got.y, &want.y, f32_tol(80, max_abs("y", &want.y)));
    assert_close("combine under 64 KiB bindings", &got.combine, &want.combine, f32_tol(80, 1.0));
    // Chunking changes no bit: the last example alone equals its row in the chunked batch.
    let alone = gpu_forward(&layer, &Tensor::new(vec![1, 49, 16], example(&x, 49)).unwrap());
    assert_bits("the example alone against in the chunked batch", &alone.y, &got.y[49 * 49 * 16..]);
    // With a GPU's kernels the three groups are read by one dispatch per Dense layer; with a CPU
    // adapter's, one dispatch per group (no switch over B's buffers); with seven (24 KiB bindings:
    // more than a dispatch's four B bindings) each group has its own. Same bits as unsplit each way.
    let one = x.data[..49 * 16].to_vec();
    let one = Tensor::new(vec![1, 49, 16], one).unwrap();
    let whole = gpu_forward(&pollster::block_on(SoftMoe::new(crate::common::ctx(), &w)).unwrap(), &one);
    for (kernels, dispatches, bindings) in [(wgpu::DeviceType::DiscreteGpu, 1, 3), (wgpu::DeviceType::Cpu, 3, 1)] {
        let opts = GpuOptions { max_binding_bytes: Some(64 << 10), kernels_for: Some(kernels), ..Default::default() };
        let split = pollster::block_on(SoftMoe::new(pollster::block_on(GpuContext::with_options(opts)).unwrap(), &w)).unwrap();
        let g = split.stage_gemms(1, 49, false);
        assert_eq!((g.experts.len(), g.experts[0].0.b_buffers()), (dispatches, bindings), "{kernels:?}: Dense₀ dispatches, bindings");
        assert_bits(&format!("three groups, {kernels:?} kernels, against unsplit"), &gpu_forward(&split, &one).y, &whole.y);
    }
    let tiny =
        pollster::block_on(GpuContext::with_options(GpuOptions { max_binding_bytes: Some(24 << 10), ..Default::default() })).unwrap();
    let seven = pollster::block_on(SoftMoe::new(tiny, &w)).unwrap();
    assert_eq!(seven.stage_gemms(1, 9, false).experts.len(), 7, "seven groups, one dispatch pair each");
    // Nine tokens, so that one example's buffers fit 24 KiB.
    let nine = Tensor::new(vec![1, 9, 16], x.data[..9 * 16].to_vec()).unwrap();
    let whole = gpu_forward(&pollster::block_on(SoftMoe::new(crate::common::ctx(), &w)).unwrap(), &nine);
    assert_bits("seven groups against unsplit", &gpu_forward(&seven, &nine).y, &whole.y);
}

#[test]
fn an_expert_larger_than_a_binding_is_refused_naming_the_limit() {
    let small =
        pollster::block_on(GpuContext::with_options(GpuOptions { max_binding_bytes: Some(4 << 10), ..Default::default() })).unwrap();
    let w = random_layer(&mut Rng::new(501), 32, 2, 1, 64, 1.0, Gelu::Tanh, true);
    match pollster::block_on(SoftMoe::new(small, &w)) {
        Err(Error::Limit { limit, .. }) => assert_eq!(limit, "max_storage_buffer_binding_size"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("an 8 KiB expert kernel was accepted under a 4 KiB binding limit"),
    }
}

#[test]
fn a_lost_device_gives_an_error_not_a_panic() {
    let own = pollster::block_on(GpuContext::new()).unwrap();
    let w = random_layer(&mut Rng::new(502), 8, 2, 2, 8, 2.0, Gelu::Tanh, true);
    let layer = pollster::block_on(SoftMoe::new(own.clone(), &w)).unwrap();
    let x = random_input(&mut Rng::new(503), 2, 5, 8);
    pollster::block_on(layer.forward(&x)).unwrap();
    own.device.destroy();
    let _ = own.device.poll(wgpu::PollType::Poll);
    match pollster::block_on(layer.forward(&x)) {
        Err(Error::DeviceLost { reason }) => assert!(!reason.is_empty()),
        Err(e) => panic!("wrong error kind: {e}"),
        Ok(_) => panic!("a destroyed device still answered"),
    }
}

#[test]
fn the_layer_is_deterministic_across_runs_batch_sizes_and_positions() {
    let mut rng = Rng::new(510);
    let w = random_layer(&mut rng, 24, 6, 2, 48, 12.0, Gelu::Erf, true);
    let layer = pollster::block_on(SoftMoe::new(ctx(), &w)).unwrap();
    let (m, d) = (19, 24);
    let pool = random_input(&mut rng, 128, m, d);
    let target = example(&pool, 77);
    let reference = gpu_forward(&layer, &Tensor::new(vec![1, m, d], target.clone()).unwrap());
    let s = w.slots();
    let mut visited = std::collections::BTreeSet::new();
    for b in [1usize, 2, 3, 7, 16, 33, 64, 100, 128] {
        // The first, the last and a random position of each batch size.
        for pos in [0, b - 1, rng.range(0, b - 1)] {
            visited.insert(pos);
            let mut x = Tensor::new(vec![b, m, d], pool.data[..b * m * d].to_vec()).unwrap();
            x.data[pos * m * d..(pos + 1) * m * d].copy_from_slice(&target);
            for run in 0..2 {
                let out = gpu_forward(&layer, &x);
                assert_bits(&format!("y: batch {b}, position {pos}, run {run}"), &out.y[pos * m * d..(pos + 1) * m * d], &reference.y);
                assert_bits(&format!("D: batch {b}, position {pos}"), &out.dispatch[pos * m * s..(pos + 1) * m * s], &reference.dispatch);
            }
        }
    }
    assert!(visited.len() >= 14, "only positions {visited:?} were visited");
}

#[test]
fn the_model_is_deterministic_across_batch_sizes_and_positions() {
    let c = vit_config(28, 1, 4, 32, 4, 4, &[2, 3], 4, 2);
    let mut rng = Rng::new(520);
    let w = random_vit(&mut rng, &c);
    let vit = pollster::block_on(Vit::new(ctx(), &w)).unwrap();
    let per = 28 * 28;
    let pool: Vec<f32> = rng.vec(128 * per, 0.5).into_iter().map(|v| v + 0.5).collect();
    let target: Vec<f32> = rng.vec(per, 0.5).into_iter().map(|v| v + 0.5).collect();
    let alone = pollster::block_on(vit.classify(&Tensor::new(vec![1, 28, 28], target.clone()).unwrap())).unwrap();
    for b in [2usize, 5, 64, 128] {
        for pos in [0, b / 2, b - 1] {
            let mut data = pool[..b * per].to_vec();
            data[pos * per..(pos + 1) * per].copy_from_slice(&target);
            let out = pollster::block_on(vit.classify(&Tensor::new(vec![b, 28, 28], data).unwrap())).unwrap();
            assert_eq!(out.logits.data[pos * 10..(pos + 1) * 10], alone.logits.data[..], "batch {b}, position {pos}");
        }
    }
}
