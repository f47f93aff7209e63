//! Batch invariance, bit for bit: an example's outputs do not depend on what else is in the batch.

use softmoe::{Gelu, SoftMoe, Tensor};

use crate::common::{assert_bits, assert_close, ctx, f32_tol, gpu_forward, max_abs, random_input, random_layer, Rng};

fn example(x: &Tensor, i: usize) -> Vec<f32> {
    let len = x.shape[1] * x.shape[2];
    x.data[i * len..(i + 1) * len].to_vec()
}

#[test]
fn an_example_is_bit_identical_alone_in_a_batch_of_17_and_at_another_position() {
    let (m, d) = (37, 24);
    let mut rng = Rng::new(80);
    let w = random_layer(&mut rng, d, 6, 3, 40, 10.0, Gelu::Tanh, true);
    let layer = pollster::block_on(SoftMoe::new(ctx(), &w)).unwrap();
    let batch = random_input(&mut rng, 17, m, d);
    let target = 5;
    let alone = Tensor::new(vec![1, m, d], example(&batch, target)).unwrap();

    // The same example moved from position 5 to position 11 of a different batch.
    let mut other = random_input(&mut rng, 17, m, d);
    other.data[11 * m * d..12 * m * d].copy_from_slice(&alone.data);

    let a = gpu_forward(&layer, &alone);
    let b = gpu_forward(&layer, &batch);
    let c = gpu_forward(&layer, &other);
    let s = w.slots();
    let slice = |v: &[f64], i: usize, width: usize| v[i * m * width..(i + 1) * m * width].to_vec();
    assert_bits(&format!("y alone against position {target} of 17"), &a.y, &slice(&b.y, target, d));
    assert_bits("y alone against position 11 of another batch", &a.y, &slice(&c.y, 11, d));
    assert_bits("D alone against inside the batch", &a.dispatch, &slice(&b.dispatch, target, s));
    assert_bits("C alone against another position", &a.combine, &slice(&c.combine, 11, s));
}

#[test]
fn ten_thousand_examples_run_within_the_workgroup_limits() {
    // 10,000 examples: more workgroups than one grid dimension allows, and more than one chunk.
    let (b, m, d) = (10_000, 3, 4);
    let mut rng = Rng::new(90);
    let w = random_layer(&mut rng, d, 2, 2, 5, 2.0, Gelu::Tanh, true);
    let layer = pollster::block_on(SoftMoe::new(ctx(), &w)).unwrap();
    let x = random_input(&mut rng, b, m, d);
    let out = pollster::block_on(layer.forward(&x)).unwrap();
    let reference = softmoe::reference::soft_moe_forward(&w, &x).unwrap();
    let tol = f32_tol(5, max_abs("reference y", &reference.y));
    assert_close("y of 10,000 examples", &out.y.data, &reference.y, tol);
    // The last example alone gives the same bits as inside the big batch.
    let last = Tensor::new(vec![1, m, d], example(&x, b - 1)).unwrap();
    let alone = pollster::block_on(layer.forward(&last)).unwrap();
    assert_bits("the last example alone against in the batch", &alone.y.data, &out.y.data[(b - 1) * m * d..]);
}

#[test]
fn the_kernels_a_gpu_gets_give_the_same_bits_as_a_cpu_adapters() {
    // A real GPU runs few-row expert GEMMs on the split-K kernel, a CPU adapter on the vec4 kernel
    // (GemmKernel::choose). Both follow the one summation order, so an example's bits depend on
    // neither the batch nor the adapter type the kernels were chosen for.
    let as_gpu = gpu_kernels_context();
    let (m, d) = (29, 64);
    let mut rng = Rng::new(81);
    let w = random_layer(&mut rng, d, 8, 2, 96, 6.0, Gelu::Tanh, true);
    let on_gpu_kernels = pollster::block_on(SoftMoe::new(as_gpu, &w)).unwrap();
    let on_cpu_kernels = pollster::block_on(SoftMoe::new(ctx(), &w)).unwrap();
    let batch = random_input(&mut rng, 9, m, d);
    let all = gpu_forward(&on_gpu_kernels, &batch);
    let want = softmoe::reference::soft_moe_forward(&w, &batch).unwrap();
    assert_close("split-K layer against the f64 reference", &all.y, &want.y, f32_tol(d.max(96), max_abs("y", &want.y)));
    for i in [0, 4, 8] {
        let alone = Tensor::new(vec![1, m, d], example(&batch, i)).unwrap();
        let (g, c) = (gpu_forward(&on_gpu_kernels, &alone), gpu_forward(&on_cpu_kernels, &alone));
        assert_bits(&format!("example {i}: GPU kernels alone vs in the batch"), &g.y, &all.y[i * m * d..(i + 1) * m * d]);
        assert_bits(&format!("example {i}: GPU kernels vs CPU-adapter kernels"), &g.y, &c.y);
    }
}

/// A second device on the same adapter that chooses its kernels as a discrete GPU would.
fn gpu_kernels_context() -> std::sync::Arc<softmoe::GpuContext> {
    let opts = softmoe::GpuOptions { kernels_for: Some(wgpu::DeviceType::DiscreteGpu), ..Default::default() };
    pollster::block_on(softmoe::GpuContext::with_options(opts)).unwrap()
}

#[test]
fn a_vit_gives_the_same_bits_with_the_kernels_of_either_adapter_type() {
    // Batch 1 puts the experts on the split-K kernel and batch 40 the tokens on the tiled vec4 one
    // (on a GPU); a CPU adapter runs the vec4 kernel throughout. Same bits everywhere.
    let c = crate::common::vit_config(28, 1, 4, 32, 4, 4, &[2, 3], 4, 2);
    let mut rng = Rng::new(301);
    let w = softmoe::random::random_vit(&mut rng, &c);
    let as_gpu = pollster::block_on(softmoe::model::Vit::new(gpu_kernels_context(), &w)).unwrap();
    let as_cpu = pollster::block_on(softmoe::model::Vit::new(ctx(), &w)).unwrap();
    let per = 28 * 28;
    let data: Vec<f32> = rng.vec(40 * per, 0.5).into_iter().map(|v| v + 0.5).collect();
    let batch = Tensor::new(vec![40, 28, 28, 1], data).unwrap();
    let all = pollster::block_on(as_gpu.classify(&batch)).unwrap();
    assert_eq!(all.logits.data, pollster::block_on(as_cpu.classify(&batch)).unwrap().logits.data, "batch of 40");
    for i in [0, 39] {
        let one = Tensor::new(vec![1, 28, 28, 1], batch.data[i * per..(i + 1) * per].to_vec()).unwrap();
        let alone = pollster::block_on(as_gpu.classify(&one)).unwrap();
        assert_eq!(alone.logits.data, all.logits.data[i * 10..(i + 1) * 10], "image {i} alone vs in the batch (GPU kernels)");
        assert_eq!(alone.logits.data, pollster::block_on(as_cpu.classify(&one)).unwrap().logits.data, "image {i}: GPU vs CPU kernels");
    }
}

#[test]
fn vit_variants_are_bit_identical_alone_and_anywhere_in_a_batch() {
    // Class token, MAP head and qk-norm, on Soft MoE and dense models (a sparse router's groups
    // couple images by design: tests/gpu/sparse.rs).
    use softmoe::model::Vit;
    use softmoe::random::random_vit;
    for (i, (name, c)) in crate::vit_model::variant_configs().into_iter().filter(|(n, _)| !n.starts_with("sparse")).enumerate() {
        let mut rng = Rng::new(320 + i as u64);
        let w = random_vit(&mut rng, &c);
        let vit = pollster::block_on(Vit::new(ctx(), &w)).unwrap();
        let per = c.image_size * c.image_size;
        let batch = Tensor::new(vec![9, c.image_size, c.image_size], rng.vec(9 * per, 0.5).into_iter().map(|v| v + 0.5).collect()).unwrap();
        let all = pollster::block_on(vit.classify_with_maps(&batch)).unwrap();
        for j in [0, 4, 8] {
            let one = Tensor::new(vec![1, c.image_size, c.image_size], batch.data[j * per..(j + 1) * per].to_vec()).unwrap();
            let alone = pollster::block_on(vit.classify_with_maps(&one)).unwrap();
            assert_bits(
                &format!("{name}: image {j} logits alone and in a batch of 9"),
                &alone.logits.data,
                &all.logits.data[j * 10..(j + 1) * 10],
            );
            for (a, b) in alone.maps.iter().zip(&all.maps) {
                let s = a.combine.data.len();
                assert_bits(&format!("{name}: image {j} block {} combine", a.block), &a.combine.data, &b.combine.data[j * s..(j + 1) * s]);
            }
        }
    }
}
