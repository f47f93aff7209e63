//! `sparse_gather` against its f64 reference: a copy, so exact.

use super::op;
use super::reference::sparse_gather;
use crate::kernels::sparse_route::reference::sparse_route;
use crate::kernels::sparse_route::tests::{random_gates, ROUTERS, SHAPES};
use crate::kernels::sparse_route::RouteShape;
use crate::random::Rng;
use crate::testing::{assert_bits, run_and_read, shared_context, to_f64, upload, upload_u32};

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
