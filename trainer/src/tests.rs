//! SPEC §1 test vectors for the candle Soft MoE layer, and model-level checks.

use crate::model::{self, Config, Moe, Router, Weights};
use candle_core::{Device, Tensor};

fn t(v: Vec<f32>, shape: &[usize]) -> Tensor {
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn close(a: f32, b: f32, tol: f32) -> bool {
    (a - b).abs() <= tol
}

#[test]
fn spec_small_vector() {
    let x = t(vec![1., 0., 0., 1., 1., 1., -1., 0.], &[1, 4, 2]);
    // mu[k, e, 0] = δ(k, e)
    let mu = t(vec![1., 0., 0., 1.], &[2, 2, 1]);
    let scale = t(vec![1.0], &[]);
    let w0 = t(vec![1., 0., -1., 0., 1., 1., 2., 0., 0., 0., -1., 1.], &[2, 2, 3]);
    let b0 = t(vec![0., 0.1, 0., 0., 0., -0.1], &[2, 3]);
    let w1 = t(vec![1., 0., 0., 1., 1., 1., 0.5, 0., 0., 0.5, -1., 1.], &[2, 3, 2]);
    let b1 = t(vec![0., 0., 0.1, -0.1], &[2, 2]);
    let (d, c, y) = model::soft_moe_parts(&x, &mu, &scale, &w0, &b0, &w1, &b1).unwrap();
    let d = d.squeeze(0).unwrap().to_vec2::<f32>().unwrap();
    let want_d = [[0.4445793, 0.1482273], [0.1635518, 0.4029233], [0.3317016, 0.3006219], [0.0601674, 0.1482273]];
    for i in 0..4 {
        for j in 0..2 {
            assert!(close(d[i][j], want_d[i][j], 1e-5), "D[{i}][{j}] = {}", d[i][j]);
        }
    }
    let c = c.squeeze(0).unwrap().to_vec2::<f32>().unwrap();
    assert!(close(c[0][0], 0.7310584, 1e-5) && close(c[0][1], 0.2689416, 1e-5));
    assert!(close(c[2][0], 0.5, 1e-5) && close(c[2][1], 0.5, 1e-5));
    let y = y.squeeze(0).unwrap().to_vec2::<f32>().unwrap();
    let want_y = [[0.3004188, 0.3167834], [0.0344004, 0.2770616], [0.1674096, 0.2969225], [0.0344004, 0.2770616]];
    for i in 0..4 {
        for k in 0..2 {
            // erf GELU would move Y by up to 5.4e-5: 1e-5 proves the tanh approximation.
            assert!(close(y[i][k], want_y[i][k], 1e-5), "Y[{i}][{k}] = {}", y[i][k]);
        }
    }
}

fn fill(n: usize, f: impl Fn(f64) -> f64) -> Vec<f32> {
    (0..n).map(|i| f(i as f64) as f32).collect()
}

#[test]
fn spec_medium_vector() {
    let (b, m, d, h, n, p) = (2, 16, 8, 16, 4, 2);
    let x = t(fill(b * m * d, |t| (0.37 * t + 0.1).sin()), &[b, m, d]);
    let mu = t(fill(d * n * p, |t| (0.23 * t).cos()), &[d, n, p]);
    let w0 = t(fill(n * d * h, |t| 0.3 * (0.11 * t + 0.5).sin()), &[n, d, h]);
    let b0 = t(fill(n * h, |t| 0.05 * (0.7 * t).cos()), &[n, h]);
    let w1 = t(fill(n * h * d, |t| 0.3 * (0.13 * t + 0.2).cos()), &[n, h, d]);
    let b1 = t(fill(n * d, |t| 0.05 * (0.9 * t).sin()), &[n, d]);
    let scale = t(vec![2.0], &[]);
    let y = model::soft_moe(&x, &mu, &scale, &w0, &b0, &w1, &b1).unwrap();
    assert_eq!(y.dims(), &[b, m, d]);
    let flat = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let sum: f64 = flat.iter().map(|&v| v as f64).sum();
    let abs: f64 = flat.iter().map(|&v| v.abs() as f64).sum();
    assert!((sum - 0.5160407).abs() <= 1e-6, "sum(Y) = {sum}");
    assert!((abs - 4.7418078).abs() <= 1e-6, "sum|Y| = {abs}");
    let want = [0.027438, 0.020500, -0.001984, -0.023410, -0.027964, -0.012589, 0.010712, 0.023965];
    for k in 0..d {
        // listed to 6 decimals
        assert!(close(flat[k], want[k], 1e-5), "Y[0,0,{k}] = {}", flat[k]);
    }
    // Batch invariance: example 1 alone gives the same output.
    let y1 = model::soft_moe(&x.narrow(0, 1, 1).unwrap(), &mu, &scale, &w0, &b0, &w1, &b1)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    for (a, b) in y1.iter().zip(&flat[m * d..]) {
        assert!(close(*a, *b, 1e-6));
    }
}

#[test]
fn patch_order_is_row_major_py_px() {
    let cfg = model::config(8, 2, 2, 16, 2, 1, Moe::Soft);
    let img: Vec<f32> = (0..784).map(|i| i as f32).collect();
    let p = model::patchify(&t(img, &[1, 28, 28]), &cfg).unwrap().squeeze(0).unwrap().to_vec2::<f32>().unwrap();
    // token t = gy*7 + gx; element (py, px) of the patch = pixel (4gy+py, 4gx+px)
    let (gy, gx, py, px) = (2, 5, 3, 1);
    assert_eq!(p[gy * 7 + gx][py * 4 + px], ((4 * gy + py) * 28 + 4 * gx + px) as f32);
}

#[test]
fn model_shapes_names_and_gradients() {
    let cfg = model::config(16, 4, 2, 32, 4, 2, Moe::Soft);
    assert_eq!(cfg.moe_layers, vec![2, 3]);
    assert_eq!(Config::from_json(&cfg.to_json(), "test").unwrap(), cfg);
    let vars = model::init_params(&cfg, 7, &Device::Cpu).unwrap();
    let w = Weights::from_vars(&vars);
    w.check(&cfg).unwrap();
    assert_eq!(w.0["Encoder/encoderblock_3/Moe/Router/scale"].dims(), &[] as &[usize]);
    assert_eq!(w.0["Encoder/encoderblock_3/Moe/Router/mu"].dims(), &[16, 4, 2]);
    assert_eq!(w.0["Encoder/encoderblock_1/MlpBlock_3/Dense_0/kernel"].dims(), &[16, 32]);
    assert_eq!(w.0["embedding/kernel"].dims(), &[4, 4, 1, 16]);
    let n: usize = w.0.values().map(|t| t.elem_count()).sum();
    assert_eq!(n, model::parameter_count(&cfg));
    let x = Tensor::rand(0f32, 1f32, (3, 28, 28), &Device::Cpu).unwrap();
    let logits = model::forward(&x, &w, &cfg).unwrap();
    assert_eq!(logits.dims(), &[3, 10]);
    // Gradients against central differences of the loss, from the head down into the Soft MoE
    // router, the experts and the patch embedding. The head kernel starts at zero, which would stop
    // every gradient below it, so it gets random values first.
    let y = Tensor::new(&[1u32, 2, 3], &Device::Cpu).unwrap();
    let head = &vars["head/kernel"];
    head.set(&Tensor::randn(0f32, 0.5, head.dims(), &Device::Cpu).unwrap()).unwrap();
    let loss_of = || candle_nn::loss::cross_entropy(&model::forward(&x, &w, &cfg).unwrap(), &y).unwrap();
    let grads = loss_of().backward().unwrap();
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    for (name, i) in [
        ("head/kernel", 5),
        ("Encoder/encoderblock_3/Moe/Router/scale", 0),
        ("Encoder/encoderblock_3/Moe/Router/mu", 7),
        ("Encoder/encoderblock_2/Moe/Mlp/Dense_0/kernel", 11),
        ("Encoder/encoderblock_2/Moe/Mlp/Dense_1/bias", 2),
        ("embedding/kernel", 3),
    ] {
        let v = &vars[name];
        let g = flat(grads.get(v.as_tensor()).unwrap_or_else(|| panic!("no gradient for {name}")))[i];
        let orig = flat(v.as_tensor());
        let loss_at = |delta: f32| {
            let mut p = orig.clone();
            p[i] += delta;
            v.set(&Tensor::from_vec(p, v.dims(), &Device::Cpu).unwrap()).unwrap();
            loss_of().to_scalar::<f32>().unwrap()
        };
        let h = 1e-2f32;
        let fd = (loss_at(h) - loss_at(-h)) / (2.0 * h);
        v.set(&Tensor::from_vec(orig, v.dims(), &Device::Cpu).unwrap()).unwrap();
        // The f32 loss (~2.3) carries ~1e-6 of round-off, 5e-5 once divided by 2h; the O(h²)
        // truncation is of the same order: 3e-4 absolute plus 1 % leaves ~5x headroom.
        assert!(g != 0.0, "{name}[{i}]: zero gradient");
        assert!((g - fd).abs() <= 3e-4 + 1e-2 * fd.abs(), "{name}[{i}]: backward {g} against central difference {fd}");
    }
    // Safetensors round trip of the rank-0 scale.
    let dir = std::env::temp_dir().join(format!("trainer-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.safetensors");
    candle_core::safetensors::save(&w.0, &path).unwrap();
    let back = Weights(candle_core::safetensors::load(&path, &Device::Cpu).unwrap());
    back.check(&cfg).unwrap();
    assert_eq!(back.0["Encoder/encoderblock_2/Moe/Router/scale"].dims(), &[] as &[usize]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_shipped_configs_are_the_trainers_and_record_its_counts() {
    for (dir, moe) in [("dense-vit", Moe::Dense), ("soft-moe-vit", Moe::Soft)] {
        let path = format!("{}/../weights/{dir}/config.json", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        let cfg = model::config(64, 4, 4, 128, 8, 2, moe);
        assert_eq!(Config::from_json(&text, &path).unwrap(), cfg, "{dir}");
        model::trainable(&cfg).unwrap();
        let training = &serde_json::from_str::<serde_json::Value>(&text).unwrap()["training"];
        assert_eq!(Some(softmoe::flops::vit_gemm_flops_per_image(&cfg)), training["flops_per_image"].as_u64(), "{dir}");
        assert_eq!(Some(model::parameter_count(&cfg) as u64), training["parameters"].as_u64(), "{dir}");
    }
}

/// y_t = Σ over the experts that took token t of gate(t, e) · expert_e(x_t), in f64 loops.
#[allow(clippy::too_many_arguments)]
fn sparse_reference(
    x: &[f32],
    (b, m, d): (usize, usize, usize),
    wr: &[f32],
    w: [&[f32]; 4],
    n: usize,
    h: usize,
    router: &Router,
    gs: usize,
) -> Vec<f64> {
    let [w0, b0, w1, b1] = w;
    let rows = b * m;
    let mut gates = vec![0f32; rows * n];
    for t in 0..rows {
        let logits: Vec<f64> = (0..n).map(|e| (0..d).map(|k| x[t * d + k] as f64 * wr[k * n + e] as f64).sum()).collect();
        let mx = logits.iter().cloned().fold(f64::MIN, f64::max);
        let z: f64 = logits.iter().map(|l| (l - mx).exp()).sum();
        for e in 0..n {
            gates[t * n + e] = ((logits[e] - mx).exp() / z) as f32;
        }
    }
    let mut y = vec![0f64; rows * d];
    for g in softmoe::routing::groups(b, m, gs) {
        let route = softmoe::routing::route(router, &gates[g.start * n..g.end * n], n);
        for (i, s) in route.iter().enumerate() {
            if s.is_none() {
                continue;
            }
            let (t, e) = (g.start + i / n, i % n);
            let hid: Vec<f64> = (0..h)
                .map(|j| {
                    let a = b0[e * h + j] as f64 + (0..d).map(|k| x[t * d + k] as f64 * w0[(e * d + k) * h + j] as f64).sum::<f64>();
                    0.5 * a * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (a + 0.044715 * a * a * a)).tanh())
                })
                .collect();
            for k in 0..d {
                let o = b1[e * d + k] as f64 + (0..h).map(|j| hid[j] * w1[(e * h + j) * d + k] as f64).sum::<f64>();
                y[t * d + k] += gates[t * n + e] as f64 * o;
            }
        }
    }
    y
}

#[test]
fn sparse_layers_match_a_per_token_reference_and_train_the_router() {
    let (b, m, d, n, h) = (5, 7, 6, 4, 5);
    let r = |len: usize, seed: u64| -> Vec<f32> {
        let mut rng = model::Rng::new(seed);
        (0..len).map(|_| rng.normal() as f32).collect()
    };
    let x = r(b * m * d, 1);
    let (wr, w0, b0, w1, b1) = (r(d * n, 2), r(n * d * h, 3), r(n * h, 4), r(n * h * d, 5), r(n * d, 6));
    for router in [
        Router::tokens_choice(1, 1.0),
        Router::TokensChoice { k: 2, capacity_factor: 0.5, capacity_multiple_of: 1 },
        Router::experts_choice(1.0),
    ] {
        let wr_var = candle_core::Var::from_tensor(&t(wr.clone(), &[d, n])).unwrap();
        let (y, aux) = model::sparse_moe(
            &t(x.clone(), &[b, m, d]),
            wr_var.as_tensor(),
            &t(w0.clone(), &[n, d, h]),
            &t(b0.clone(), &[n, h]),
            &t(w1.clone(), &[n, h, d]),
            &t(b1.clone(), &[n, d]),
            &router,
            2,
        )
        .unwrap();
        let want = sparse_reference(&x, (b, m, d), &wr, [&w0, &b0, &w1, &b1], n, h, &router, 2);
        let got: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!((*g as f64 - w).abs() < 1e-4 * (1.0 + w.abs()), "{router:?} y[{i}] = {g}, want {w}");
        }
        let loss = (y.sqr().unwrap().sum_all().unwrap() + aux).unwrap();
        let grads = loss.backward().unwrap();
        let gr = grads.get(wr_var.as_tensor()).expect("router kernel gets a gradient");
        assert!(gr.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0, "{router:?}: zero router gradient");
    }
}

#[test]
fn sparse_configs_round_trip_and_count_parameters() {
    let router = Router::tokens_choice(2, 1.25);
    let cfg = model::config(16, 4, 2, 32, 4, 2, Moe::Sparse { router, group_size: 4 });
    assert_eq!(Config::from_json(&cfg.to_json(), "test").unwrap(), cfg);
    assert!(cfg.to_json().contains(r#""moe_type": "tokens_choice""#));
    let soft = model::config(16, 4, 2, 32, 4, 2, Moe::Soft);
    // Router/dense/kernel [d, n] replaces Router/mu [d, n, p] and Router/scale in each MoE block.
    assert_eq!(model::parameter_count(&soft) - model::parameter_count(&cfg), 2 * (16 * 4 * 2 + 1 - 16 * 4));
    let w = Weights::from_vars(&model::init_params(&cfg, 3, &Device::Cpu).unwrap());
    w.check(&cfg).unwrap();
    let logits = model::forward(&Tensor::rand(0f32, 1f32, (6, 28, 28), &Device::Cpu).unwrap(), &w, &cfg).unwrap();
    assert_eq!(logits.dims(), &[6, 10]);
    // Capacity ⌈2·(4·49)·1.25/4⌉ = 123, rounded up to vmoe's multiple of 4: 124 slots per expert
    // per group of 4 images; config.json records the multiple, and 1 keeps 123.
    assert_eq!(cfg.router.unwrap().capacity(4 * 49, 4), 124);
    assert!(cfg.to_json().contains(r#""capacity_multiple_of": 4"#));
    let unrounded = model::config(16, 4, 2, 32, 4, 2, Moe::Sparse { router: router.with_capacity_multiple_of(1), group_size: 4 });
    assert_eq!(unrounded.router.unwrap().capacity(4 * 49, 4), 123);
    assert_eq!(Config::from_json(&unrounded.to_json(), "test").unwrap(), unrounded);
}

#[test]
fn label_smoothing_mixes_the_label_with_the_uniform_target() {
    let logits = t(vec![2.0, -1.0, 0.5, 0.0, 3.0, -2.0], &[2, 3]);
    let y = Tensor::from_slice(&[2u32, 1], 2, &Device::Cpu).unwrap();
    let loss = |eps: f64| crate::step::smoothed_cross_entropy(&logits, &y, eps).unwrap().to_scalar::<f32>().unwrap() as f64;
    let plain = candle_nn::loss::cross_entropy(&logits, &y).unwrap().to_scalar::<f32>().unwrap() as f64;
    assert!((loss(0.0) - plain).abs() < 1e-6);
    // By hand: -log p over both rows, for the labels and averaged over the classes.
    let lp = |row: [f64; 3], k: usize| row[k] - row.iter().map(|v| v.exp()).sum::<f64>().ln();
    let rows = [[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]];
    let nll = -(lp(rows[0], 2) + lp(rows[1], 1)) / 2.0;
    let uniform = -(0..3).map(|k| lp(rows[0], k) + lp(rows[1], k)).sum::<f64>() / 6.0;
    assert!((loss(0.1) - (0.9 * nll + 0.1 * uniform)).abs() < 1e-5, "{} vs {}", loss(0.1), 0.9 * nll + 0.1 * uniform);
}

#[test]
fn drop_path_keeps_the_first_block_and_preserves_the_mean() {
    let (b, layers) = (4000, 4);
    let keep = model::DropPath::sample(&mut model::Rng::new(1), b, layers, 0.3);
    assert_eq!(keep.len(), layers * 2 * b);
    assert!(keep[..2 * b].iter().all(|&v| v == 1.0), "block 0 never drops");
    let last = &keep[(layers - 1) * 2 * b..];
    let dropped = last.iter().filter(|&&v| v == 0.0).count() as f64 / last.len() as f64;
    assert!((dropped - 0.3).abs() < 0.02, "last block drops {dropped}");
    let mean = last.iter().map(|&v| v as f64).sum::<f64>() / last.len() as f64;
    assert!((mean - 1.0).abs() < 0.03, "kept branches are rescaled: mean {mean}");
    assert!(model::DropPath::sample(&mut model::Rng::new(1), b, layers, 0.0).is_empty());
}

#[test]
fn scaled_residual_matches_plain_ops_forward_and_backward() {
    let x = candle_core::Var::from_tensor(&t((0..24).map(|i| i as f32 * 0.1).collect(), &[3, 2, 4])).unwrap();
    let y = candle_core::Var::from_tensor(&t((0..24).map(|i| (i as f32).sin()).collect(), &[3, 2, 4])).unwrap();
    let keep = t(vec![0.0, 1.25, 1.0], &[3]);
    let fused = crate::ops::scaled_residual(x.as_tensor(), y.as_tensor(), &keep).unwrap();
    let plain = (x.as_tensor() + y.as_tensor().broadcast_mul(&keep.reshape((3, 1, 1)).unwrap()).unwrap()).unwrap();
    let diff = (&fused - &plain).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
    assert!(diff < 1e-6, "forward differs by {diff}");
    let w = t((0..24).map(|i| (i as f32 * 0.7).cos()).collect(), &[3, 2, 4]);
    let gf = (&fused * &w).unwrap().sum_all().unwrap().backward().unwrap();
    let gp = (&plain * &w).unwrap().sum_all().unwrap().backward().unwrap();
    for v in [&x, &y] {
        let d = (gf.get(v.as_tensor()).unwrap() - gp.get(v.as_tensor()).unwrap()).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-6);
    }
}
