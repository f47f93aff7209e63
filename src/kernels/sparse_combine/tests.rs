//! `sparse_combine` against its f64 reference, written and added to a residual.

use super::op;
use super::reference::sparse_combine;
use crate::kernels::sparse_route::reference::sparse_route;
use crate::kernels::sparse_route::tests::{random_gates, ROUTERS, SHAPES};
use crate::kernels::sparse_route::RouteShape;
use crate::random::Rng;
use crate::testing::{assert_close, f32_tol, run_and_read, shared_context, to_f64, upload, upload_u32};

#[test]
fn sums_the_gated_expert_outputs() {
    let mut rng = Rng::new(302);
    let c = shared_context();
    for (b, m, n, gi) in SHAPES {
        for router in ROUTERS.into_iter().filter(|r| r.k() <= n) {
            let d = 6;
            let s = RouteShape::new(&router, b, m, n, gi);
            let gates = random_gates(&mut rng, s.rows, n);
            let slots = sparse_route(&router, &s, &gates);
            let table: Vec<u32> = slots.iter().map(|s| s.map_or(u32::MAX, |v| v as u32)).collect();
            let ys = rng.vec(s.groups * n * s.cap_full * d, 1.0);
            let y0 = rng.vec(s.rows * d, 1.0);
            let want = sparse_combine(&s, d, &to_f64(&gates), &slots, &to_f64(&ys));
            for residual in [false, true] {
                let (gb, sb, ysb, yb) = (upload(&c, &gates), upload_u32(&c, &table), upload(&c, &ys), upload(&c, &y0));
                let got = run_and_read(&c, &[&op(&c, &s, d, &gb, &sb, &ysb, &yb, residual).unwrap()], &yb, s.rows * d);
                let want: Vec<f64> = if residual { want.iter().zip(&y0).map(|(w, &r)| w + r as f64).collect() } else { want.clone() };
                // At most n gated terms of size ≤ 1 (gates sum to 1), plus the residual.
                assert_close(&format!("b{b} m{m} n{n} groups of {gi} residual {residual}: {router:?}"), &got, &want, f32_tol(n, 2.0));
            }
        }
    }
}
