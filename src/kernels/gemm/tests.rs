//! The GEMM kernels against the f64 `gemm` reference over plain, transposed and grouped views, at
//! shapes that do and do not divide the tiles, and against each other bit for bit.

use super::reference::gemm;
use super::{Activation, GemmKernel, Matmul, MatrixView};
use crate::config::Gelu;
use crate::random::Rng;
use crate::testing::{assert_bits, assert_close, f32_tol, run_and_read, shared_context, upload};

/// C = A·B through the given view of A, no bias, no activation.
fn plain(m: usize, n: usize, k: usize, batch: usize, a: MatrixView) -> Matmul {
    Matmul { batch, a, ..Matmul::new(m, n, k) }
}

#[test]
fn views_activations_and_bias_match_the_reference() {
    let mut rng = Rng::new(3);
    let c = shared_context();
    let shapes = [(1, 1, 1, 1), (63, 65, 17, 2), (64, 64, 64, 1), (129, 3, 70, 3), (5, 130, 1, 2), (2, 7, 200, 4)];
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
    // m = 1 and m = 9 leave one row in a tile: the vec4 kernel's single-row path, k odd and even.
    for (m, n, k) in
        [(1, 4, 1), (1, 260, 67), (1, 8, 384), (3, 68, 33), (16, 64, 100), (40, 8, 17), (130, 132, 65), (9, 260, 7), (9, 4, 130)]
    {
        let mm = Matmul {
            bias_batch_stride: Some(n),
            activation: Activation::Gelu(Gelu::Tanh),
            ..plain(m, n, k, 2, MatrixView::row_major(m, k))
        };
        let (a, b, bias) = (upload(&c, &rng.vec(2 * m * k, 1.0)), upload(&c, &rng.vec(2 * k * n, 1.0)), upload(&c, &rng.vec(2 * n, 1.0)));
        let outs: Vec<Vec<f64>> = [GemmKernel::Tiled, GemmKernel::Skinny, GemmKernel::Naive, GemmKernel::Vec4, GemmKernel::Vec4Blocked]
            .iter()
            .map(|&g| {
                let out = upload(&c, &vec![0.0; 2 * m * n]);
                let op = mm.op_with(g, &c, &a, &b, Some(&bias), &out).unwrap();
                run_and_read(&c, &[&op], &out, 2 * m * n)
            })
            .collect();
        assert_bits(&format!("{m}x{n}x{k}: tiled vs skinny"), &outs[0], &outs[1]);
        assert_bits(&format!("{m}x{n}x{k}: tiled vs naive"), &outs[0], &outs[2]);
        assert_bits(&format!("{m}x{n}x{k}: tiled vs vec4"), &outs[0], &outs[3]);
        assert_bits(&format!("{m}x{n}x{k}: tiled vs vec4 without the single-row path"), &outs[0], &outs[4]);
    }
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
