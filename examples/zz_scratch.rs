use softmoe::kernels::gemm::{GemmKernel, Matmul, MatrixView};
use softmoe::kernels::profile_ops;
use softmoe::testing::{shared_context, upload};
fn main() {
    let c = shared_context();
    for (m, n, k, batch) in
        [(2, 128, 64, 1), (2, 128, 64, 8), (2, 128, 640, 1), (2, 128, 640, 8), (2, 1024, 64, 1), (16, 128, 64, 8), (49, 128, 64, 1)]
    {
        let mm = Matmul { batch, b: MatrixView::panels(k, n), bias_batch_stride: Some(n), ..Matmul::new(m, n, k) };
        let mm = Matmul { a: MatrixView { batch_stride: m * k, ..mm.a }, c: MatrixView { batch_stride: m * n, ..mm.c }, ..mm };
        let (a, b, bias, out) = (
            upload(&c, &vec![0.5; batch * m * k]),
            upload(&c, &vec![0.5; batch * k * n]),
            upload(&c, &vec![0.5; batch * n]),
            upload(&c, &vec![0.0; batch * m * n]),
        );
        for g in [GemmKernel::Vec4, GemmKernel::Skinny] {
            let op = mm.op_with(g, &c, &a, &b, Some(&bias), &out).unwrap();
            let mut v = Vec::new();
            for _ in 0..15 {
                v.push(pollster::block_on(profile_ops(&c, &[&op])).unwrap().unwrap()[0]);
            }
            v.sort_by(f64::total_cmp);
            println!("{m}x{n}x{k} batch {batch} {g:?}: {:.3} ms", v[7] * 1e3);
        }
    }
}
