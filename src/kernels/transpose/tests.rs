//! `transpose` against the CPU transpose: a copy, so exact.

use super::{op, transpose_batched};
use crate::random::Rng;
use crate::testing::{assert_bits, run_and_read_f32, shared_context, upload};

#[test]
fn transposes_every_matrix_of_the_batch() {
    let mut rng = Rng::new(420);
    let c = shared_context();
    for (batch, rows, cols) in [(1, 1, 1), (1, 64, 192), (8, 128, 64), (3, 7, 65)] {
        let x = rng.vec(batch * rows * cols, 1.0);
        let (src, dst) = (upload(&c, &x), upload(&c, &vec![0.0; x.len()]));
        let got = run_and_read_f32(&c, &[&op(&c, &src, &dst, batch, rows, cols).unwrap()], &dst, x.len());
        assert_bits(&format!("transpose {batch}x{rows}x{cols}"), &got, &transpose_batched(&x, batch, rows, cols));
    }
}
