//! The fused slot experts against the three GEMMs they replace (bit for bit, with the kernels either
//! adapter type gets) and against the f64 reference, at shapes that do and do not fill the workgroup.

use super::{op, SlotExpertsShape};
use crate::config::Gelu;
use crate::kernels::gemm::{GemmKernel, Matmul};
use crate::layers::stages;
use crate::random::{random_layer, LayerShape, Rng};
use crate::reference::{expert_mlp, slot_inputs};
use crate::testing::{assert_bits, assert_close, f32_tol, run_and_read_f32, shared_context, to_f64, upload};

/// Dispatch weights: a softmax over the tokens of random logits, per example and slot.
fn dispatch_weights(rng: &mut Rng, b: usize, m: usize, s: usize) -> Vec<f32> {
    let l = rng.vec(b * m * s, 3.0);
    let mut out = vec![0.0; l.len()];
    for e in 0..b {
        for j in 0..s {
            let at = |t: usize| e * m * s + t * s + j;
            let mx = (0..m).map(|t| l[at(t)]).fold(f32::MIN, f32::max);
            let sum: f32 = (0..m).map(|t| (l[at(t)] - mx).exp()).sum();
            (0..m).for_each(|t| out[at(t)] = (l[at(t)] - mx).exp() / sum);
        }
    }
    out
}

#[test]
fn equals_the_three_gemms_bit_for_bit_and_matches_the_reference() {
    let c = shared_context();
    let mut rng = Rng::new(41);
    // (batch, tokens, d, experts, slots per expert, h, GELU): the demo layer (panel-stored kernels),
    // row-major kernels (widths not multiples of 32), token counts off the 32-k chunk and the 64
    // invocations, one token, the most rows.
    for (b, m, d, n, p, h, gelu) in [
        (1, 49, 64, 8, 2, 128, Gelu::Tanh),
        (1, 7, 12, 3, 1, 20, Gelu::Erf),
        (3, 50, 8, 5, 2, 36, Gelu::Tanh),
        (4, 33, 32, 2, 2, 64, Gelu::Erf),
        (2, 1, 4, 1, 3, 4, Gelu::Tanh),
        (1, 100, 40, 4, 4, 96, Gelu::Tanh),
        // Past the small kernel's workgroup memory (8 rows × 320 floats).
        (2, 20, 64, 3, 4, 256, Gelu::Erf),
    ] {
        let shape = SlotExpertsShape { batch: b, tokens: m, d, n, p, h, gelu };
        assert!(shape.fits(), "{shape:?}");
        let w = random_layer(&mut rng, LayerShape { d, n, p, h, scale: 1.0, gelu, normalize: true });
        let s = n * p;
        let dm = dispatch_weights(&mut rng, b, m, s);
        let x = rng.vec(b * m * d, 1.0);
        let (dbuf, xbuf) = (upload(&c, &dm), upload(&c, &x));
        let w0 = upload(&c, &stages::expert_kernel_layout(&w.w0, n, d, h));
        let w1 = upload(&c, &stages::expert_kernel_layout(&w.w1, n, h, d));
        let (b0, b1) = (upload(&c, &w.b0), upload(&c, &w.b1));
        let out = upload(&c, &vec![0.0; b * s * d]);
        let fused = op(&c, shape, &dbuf, &xbuf, &w0, &b0, &w1, &b1, &out).unwrap();
        let got = run_and_read_f32(&c, &[&fused], &out, b * s * d);

        // The three GEMMs, with the kernels a CPU adapter and a GPU get.
        let (xs, hidden, ys) = (upload(&c, &vec![0.0; b * s * d]), upload(&c, &vec![0.0; b * s * h]), upload(&c, &vec![0.0; b * s * d]));
        let gemms = [stages::slot_inputs(b, m, s, d), stages::dense0(b, n, p, d, h, 0..n, gelu), stages::dense1(b, n, p, d, h, 0..n)];
        for device in [wgpu::DeviceType::Cpu, wgpu::DeviceType::DiscreteGpu] {
            let run = |mm: &Matmul, a, bm, bias, out| mm.op_with(GemmKernel::choose(mm, device), &c, a, bm, bias, out).unwrap();
            let ops = [
                run(&gemms[0], &dbuf, &xbuf, None, &xs),
                run(&gemms[1], &xs, &w0, Some(&b0), &hidden),
                run(&gemms[2], &hidden, &w1, Some(&b1), &ys),
            ];
            let want = run_and_read_f32(&c, &ops.iter().collect::<Vec<_>>(), &ys, b * s * d);
            assert_bits(&format!("{shape:?}: fused against the {device:?} GEMMs"), &got, &want);
        }

        // The f64 reference, per example.
        let (df, xf) = (to_f64(&dm), to_f64(&x));
        let want: Vec<f64> = (0..b)
            .flat_map(|e| {
                let xs = slot_inputs(&df[e * m * s..(e + 1) * m * s], &xf[e * m * d..(e + 1) * m * d], m, s, d);
                expert_mlp(&xs, &w)
            })
            .collect();
        assert_close(&format!("{shape:?} against the f64 reference"), &to_f64(&got), &want, f32_tol(h + d + m, 4.0));
    }
}

#[test]
fn refuses_what_it_does_not_take() {
    let c = shared_context();
    let one = upload(&c, &[0.0]);
    let base = SlotExpertsShape { batch: 1, tokens: 4, d: 8, n: 2, p: 1, h: 8, gelu: Gelu::Tanh };
    for shape in [
        SlotExpertsShape { d: 6, ..base },
        SlotExpertsShape { h: 10, ..base },
        SlotExpertsShape { batch: 9, ..base },
        SlotExpertsShape { d: 384, h: 1536, ..base },
        SlotExpertsShape { tokens: 0, ..base },
    ] {
        assert!(!shape.fits(), "{shape:?}");
        assert!(op(&c, shape, &one, &one, &one, &one, &one, &one, &one).is_err(), "{shape:?}");
    }
    // A buffer shorter than the shape is refused, naming it.
    let short = op(&c, base, &one, &one, &one, &one, &one, &one, &one).err().expect("short buffers");
    assert!(short.to_string().contains("dispatch needs"), "{short}");
}
