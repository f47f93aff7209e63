//! `sparse_route` against the CPU routing rules applied to the same f32 gates: exact. The shapes,
//! routers and gates here serve the gather and combine tests too.

use super::reference::sparse_route;
use super::{op, RouteShape};
use crate::random::Rng;
use crate::routing::Router;
use crate::testing::{run_and_read_f32, shared_context, upload, upload_u32};

/// The shapes of the tests: (b, m, n, group images), groups that do and do not divide the batch.
pub(crate) const SHAPES: [(usize, usize, usize, usize); 4] = [(3, 7, 3, 2), (4, 49, 8, 2), (5, 1, 2, 3), (2, 65, 4, 1)];

/// vmoe's rounded capacity, the unrounded one, two choices per token, and Experts Choice.
pub(crate) const ROUTERS: [Router; 4] = [
    Router::tokens_choice(1, 1.0),
    Router::TokensChoice { k: 2, capacity_factor: 0.75, capacity_multiple_of: 1 },
    Router::experts_choice(1.0),
    Router::ExpertsChoice { capacity_factor: 1.0, capacity_multiple_of: 1 },
];

/// Gates [rows, n]: a softmax over experts of random logits, as the router makes them.
pub(crate) fn random_gates(rng: &mut Rng, rows: usize, n: usize) -> Vec<f32> {
    let l = rng.vec(rows * n, 3.0);
    l.chunks(n)
        .flat_map(|r| {
            let max = r.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let e: Vec<f32> = r.iter().map(|v| (v - max).exp()).collect();
            let s: f32 = e.iter().sum();
            e.into_iter().map(move |v| v / s)
        })
        .collect()
}

#[test]
fn routes_exactly_as_the_cpu_rules() {
    let mut rng = Rng::new(300);
    let c = shared_context();
    for (b, m, n, gi) in SHAPES {
        for router in ROUTERS.into_iter().filter(|r| r.k() <= n) {
            let s = RouteShape::new(&router, b, m, n, gi);
            let gates = random_gates(&mut rng, s.rows, n);
            let (gb, sb) = (upload(&c, &gates), upload_u32(&c, &vec![0; s.rows * n]));
            let got = run_and_read_f32(&c, &[&op(&c, &router, &s, &gb, &sb).unwrap()], &sb, s.rows * n);
            let got: Vec<Option<usize>> = got.iter().map(|v| Some(v.to_bits() as usize).filter(|&v| v != u32::MAX as usize)).collect();
            assert_eq!(got, sparse_route(&router, &s, &gates), "b{b} m{m} n{n} groups of {gi}: {router:?}");
        }
    }
}
