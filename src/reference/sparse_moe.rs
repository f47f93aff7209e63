//! The sparse MoE layers (Tokens Choice, Experts Choice) in f64: gates, routing by the rules of
//! `crate::routing`, the chosen experts on each routed token, and the gate-weighted sum.

use crate::reference::{combine_softmax, gelu, matmul, round_bf16_f64};
use crate::routing::{groups, route};
use crate::weights::SparseMoeWeights;

/// y [rows, d]; the gates [rows, n]; each (token, expert)'s slot or None.
#[derive(Clone, Debug)]
pub struct SparseReference {
    pub y: Vec<f64>,
    pub gates: Vec<f64>,
    pub slots: Vec<Option<usize>>,
}

/// Gates = softmax over experts of x·W_router, for x [rows, d].
pub fn router_gates(w: &SparseMoeWeights, x: &[f64], rows: usize) -> Vec<f64> {
    let wr: Vec<f64> = w.wr.iter().map(|&v| v as f64).collect();
    combine_softmax(&matmul(x, &wr, rows, w.d, w.n), rows, w.n)
}

/// Expert e's MLP on one token.
pub fn expert(w: &SparseMoeWeights, e: usize, x: &[f64]) -> Vec<f64> {
    let (d, h) = (w.d, w.h);
    let hidden: Vec<f64> = (0..h)
        .map(|c| gelu(w.b0[e * h + c] as f64 + (0..d).map(|k| x[k] * w.w0[(e * d + k) * h + c] as f64).sum::<f64>(), w.gelu))
        .collect();
    (0..d).map(|c| w.b1[e * d + c] as f64 + (0..h).map(|k| hidden[k] * w.w1[(e * h + k) * d + c] as f64).sum::<f64>()).collect()
}

/// The layer on x [b, m, d]: groups of `w.group_size` images route together.
pub fn sparse_moe_f64(w: &SparseMoeWeights, x: &[f64], b: usize, m: usize) -> SparseReference {
    let (d, n) = (w.d, w.n);
    let rows = b * m;
    let gates = router_gates(w, x, rows);
    let mut slots = vec![None; rows * n];
    for g in groups(b, m, w.group_size) {
        let r = route(&w.router, &gates[g.start * n..g.end * n], n);
        slots[g.start * n..g.end * n].copy_from_slice(&r);
    }
    // vmoe's Bfloat16Dispatcher rounds the dispatched tokens and the experts' outputs.
    let round = |v: f64| if w.dispatch_bfloat16 { round_bf16_f64(v) } else { v };
    let mut y = vec![0.0; rows * d];
    for t in 0..rows {
        let xt: Vec<f64> = x[t * d..(t + 1) * d].iter().map(|&v| round(v)).collect();
        for e in 0..n {
            if slots[t * n + e].is_some() {
                let out = expert(w, e, &xt);
                y[t * d..(t + 1) * d].iter_mut().zip(out).for_each(|(a, v)| *a += gates[t * n + e] * round(v));
            }
        }
    }
    SparseReference { y, gates, slots }
}
