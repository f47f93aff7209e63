//! `sparse_gather` against its f64 reference: a copy, so exact.

use super::op;
use super::reference::sparse_gather;
use crate::kernels::sparse_route::reference::sparse_route;
use crate::kernels::sparse_route::RouteShape;
use crate::random::Rng;
use crate::routing::Router;
use crate::testing::{assert_bits, run_and_read, shared_context, to_f64, upload, upload_u32};

/// The shapes of the tests: (b, m, n, group images), groups that do and do not divide the batch.
const SHAPES: [(usize, usize, usize, usize); 4] = [(3, 7, 3, 2), (4, 49, 8, 2), (5, 1, 2, 3), (2, 65, 4, 1)];

/// vmoe's rounded capacity, the unrounded one, two choices per token, and Experts Choice.
const ROUTERS: [Router; 4] = [
    Router::tokens_choice(1, 1.0),
    Router::TokensChoice { k: 2, capacity_factor: 0.75, capacity_multiple_of: 1 },
    Router::experts_choice(1.0),
    Router::ExpertsChoice { capacity_factor: 1.0, capacity_multiple_of: 1 },
];

/// Gates [rows, n]: a softmax over experts of random logits, as the router makes them.
fn random_gates(rng: &mut Rng, rows: usize, n: usize) -> Vec<f32> {
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

/// A slot table as the route kernel writes it: u32::MAX where a token did not get the expert.
fn slot_table(slots: &[Option<usize>]) -> Vec<u32> {
    slots.iter().map(|s| s.map_or(u32::MAX, |v| v as u32)).collect()
}

#[test]
fn gathers_each_routed_token_into_its_slot() {
    let mut rng = Rng::new(301);
    let c = shared_context();
    for (b, m, n, gi) in SHAPES {
        for router in ROUTERS.into_iter().filter(|r| r.k() <= n) {
            let d = 5;
            let s = RouteShape::new(&router, b, m, n, gi);
            let slots = sparse_route(&router, &s, &random_gates(&mut rng, s.rows, n));
            let x = rng.vec(s.rows * d, 1.0);
            let len = s.groups * n * s.cap_full * d;
            // Filled with a marker first: every slot must be written, with zeros where no token went.
            let (sb, xb, xsb) = (upload_u32(&c, &slot_table(&slots)), upload(&c, &x), upload(&c, &vec![7.0; len]));
            let got = run_and_read(&c, &[&op(&c, &s, d, &sb, &xb, &xsb).unwrap()], &xsb, len);
            assert_bits(&format!("b{b} m{m} n{n} groups of {gi}: {router:?}"), &got, &sparse_gather(&s, d, &slots, &to_f64(&x)));
        }
    }
}
