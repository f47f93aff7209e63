//! The global norm and clipping factor against f64, and bit for bit against the f32 order.

use super::reference::{clip_factor, global_norm, global_norm_f32};
use super::{chunks, finish_op, op};
use crate::random::Rng;
use crate::testing::{assert_close, run_and_read_f32, shared_context, to_f64, upload};

#[test]
fn norm_and_clip_factor_match_the_reference() {
    let mut rng = Rng::new(330);
    let c = shared_context();
    let sizes = [1usize, 255, 257, 4096, 1000, 3];
    let grads: Vec<Vec<f32>> = sizes.iter().map(|&n| rng.vec(n, 0.5)).collect();
    let total: usize = sizes.iter().map(|&n| chunks(n)).sum();
    let partial = upload(&c, &vec![0.0; total]);
    let bufs: Vec<wgpu::Buffer> = grads.iter().map(|g| upload(&c, g)).collect();
    let mut ops = Vec::new();
    let mut offset = 0;
    for (g, b) in grads.iter().zip(&bufs) {
        ops.push(op(&c, b, &partial, g.len(), offset).unwrap());
        offset += chunks(g.len());
    }
    let g64: Vec<Vec<f64>> = grads.iter().map(|g| to_f64(g)).collect();
    let norm = global_norm(&g64.iter().map(|g| g.as_slice()).collect::<Vec<_>>());
    for max_norm in [0.0f32, 1.0, 1e6] {
        let hyper = upload(&c, &[0.0; 8]);
        let mut all: Vec<&crate::kernels::Op> = ops.iter().collect();
        let fin = finish_op(&c, &partial, &hyper, total, max_norm).unwrap();
        all.push(&fin);
        let got = run_and_read_f32(&c, &all, &hyper, 8);
        let want_norm = norm;
        assert_close("norm", &[got[5]], &[want_norm], 1e-6 * want_norm);
        assert_close(&format!("clip factor, max norm {max_norm}"), &[got[4]], &[clip_factor(norm, max_norm as f64)], 1e-6);
        let refs: Vec<&[f32]> = grads.iter().map(|g| g.as_slice()).collect();
        let (once, twice) = (global_norm_f32(&refs, true), global_norm_f32(&refs, false));
        assert!(got[5] == once || got[5] == twice, "norm {} is neither f32 order's ({once}, {twice})", got[5]);
    }
}
