//! The fused router softmax in f64: the two softmaxes it fuses, over a batch.

use crate::kernels::combine_softmax::reference::combine_softmax;
use crate::kernels::dispatch_softmax::reference::dispatch_softmax;

/// (dispatch, combine) of logits [b, m, s]: the softmax over tokens per example and slot, and the
/// softmax over slots per token.
pub fn router_softmax(l: &[f64], b: usize, m: usize, s: usize) -> (Vec<f64>, Vec<f64>) {
    let dispatch = (0..b).flat_map(|e| dispatch_softmax(&l[e * m * s..(e + 1) * m * s], m, s)).collect();
    (dispatch, combine_softmax(l, b * m, s))
}
