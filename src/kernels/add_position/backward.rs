//! The position embedding's backward: d pos = Σ over the images of dx, a `column_sum` (images are
//! its rows, the m·d values its columns).

use crate::error::Result;
use crate::gpu::GpuContext;
use crate::kernels::column_sum::ColumnSum;
use crate::kernels::Op;

/// d pos [period] = Σ over `images` of dx [images, period].
pub fn backward_op(ctx: &GpuContext, dx: &wgpu::Buffer, d_pos: &wgpu::Buffer, images: usize, period: usize) -> Result<Op> {
    ColumnSum::rows(images, period).op(ctx, dx, d_pos)
}

/// The same in f64.
pub fn add_position_backward(dx: &[f64], period: usize) -> Vec<f64> {
    let mut out = vec![0.0; period];
    for (i, v) in dx.iter().enumerate() {
        out[i % period] += v;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{add_position_backward, backward_op};
    use crate::kernels::add_position::reference::add_position;
    use crate::random::Rng;
    use crate::reference::grad_check::check_gradient_with_step;
    use crate::testing::{assert_close, f32_tol, run_and_read, shared_context, to_f64, upload};

    #[test]
    fn the_gradient_is_the_slope_and_the_kernel_sums_it() {
        let mut rng = Rng::new(410);
        let w = to_f64(&rng.vec(3 * 5, 1.0));
        let x = vec![0.5; 15];
        let f = |pos: &[f64]| {
            let mut y = x.clone();
            add_position(&mut y, &pos.iter().map(|&v| v as f32).collect::<Vec<_>>());
            y.iter().zip(&w).map(|(a, b)| a * b).sum()
        };
        check_gradient_with_step("position embedding", &[0.25; 5], f, &add_position_backward(&w, 5), 1e-5, 1e-3);
        let c = shared_context();
        for (b, period) in [(1, 1), (128, 49 * 64), (3, 67)] {
            let dx = rng.vec(b * period, 1.0);
            let (xb, pb) = (upload(&c, &dx), upload(&c, &vec![0.0; period]));
            let got = run_and_read(&c, &[&backward_op(&c, &xb, &pb, b, period).unwrap()], &pb, period);
            assert_close(&format!("position backward b{b}"), &got, &add_position_backward(&to_f64(&dx), period), f32_tol(b, b as f64));
        }
    }
}
