//! AdamW against its f64 statement over several steps, and against the f32 order within a few ulps
//! (WGSL's division and sqrt need not round correctly).

use super::reference::{adamw_f32, adamw_f64};
use super::{Adamw, HYPER_LEN};
use crate::random::Rng;
use crate::testing::{assert_close, run_and_read_f32, shared_context, to_f64, upload};

#[test]
fn three_steps_match_the_reference() {
    let mut rng = Rng::new(340);
    let c = shared_context();
    let a = Adamw::default();
    for (n, decay) in [(1, true), (63, false), (1000, true)] {
        let theta0 = rng.vec(n, 1.0);
        let grads: Vec<Vec<f32>> = (0..3).map(|_| rng.vec(n, 0.1)).collect();
        let (pb, mb, hb) = (upload(&c, &theta0), upload(&c, &vec![0.0; 2 * n]), upload(&c, &[0.0; HYPER_LEN]));
        let (mut t64, mut m64, mut v64) = (to_f64(&theta0), vec![0.0; n], vec![0.0; n]);
        let (mut t32, mut m32, mut v32) = (theta0.clone(), vec![0.0f32; n], vec![0.0f32; n]);
        for (t, g) in grads.iter().enumerate() {
            let t = t as u64 + 1;
            let lr = 1e-2 / t as f64;
            let mut hyper = [0.0f32; HYPER_LEN];
            hyper[..4].copy_from_slice(&a.step_values(t, lr));
            hyper[4] = 1.0;
            c.queue.write_buffer(&hb, 0, bytemuck::cast_slice(&hyper));
            let gb = upload(&c, g);
            let got = run_and_read_f32(&c, &[&a.op(&c, &pb, &gb, &mb, &hb, n, decay).unwrap()], &pb, n);
            (t64, m64, v64) = adamw_f64(&a, t, lr, decay, &t64, &to_f64(g), &m64, &v64);
            adamw_f32(&a.step_values(t, lr), &a, decay, 1.0, &mut t32, g, &mut m32, &mut v32);
            // Each step moves θ by at most about lr; f32 rounding of θ (≤ 1) is 6e-8 per step.
            assert_close(&format!("θ after step {t}, n {n}"), &got, &t64, 1e-6);
            assert_close(&format!("θ after step {t} against f32, n {n}"), &got, &t32, 2e-7);
        }
        let moments = run_and_read_f32(&c, &[], &mb, 2 * n);
        assert_close("m", &moments[..n], &m64, 1e-8);
        assert_close("v", &moments[n..], &v64, 1e-10);
    }
}
