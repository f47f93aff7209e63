//! The sparse MoE layers (Tokens Choice, Experts Choice) on the GPU: routing exactly as the rules of
//! `softmoe::routing` on the GPU's own gates, outputs against the f64 reference, groups independent
//! of each other, and the batch effect Soft MoE does not have.

use softmoe::layers::{SparseMoe, SparseOutput};
use softmoe::model::Vit;
use softmoe::random::random_vit;
use softmoe::routing::{groups, route, Router};
use softmoe::weights::SparseMoeWeights;
use softmoe::{Gelu, Tensor};

use crate::common::{assert_close, ctx, f32_tol, max_abs, to_f64, vit_config, Rng};

fn layer(rng: &mut Rng, d: usize, n: usize, h: usize, router: Router, group_size: usize) -> SparseMoeWeights {
    SparseMoeWeights {
        d,
        n,
        h,
        router,
        group_size,
        wr: rng.vec(d * n, 1.0),
        w0: rng.vec(n * d * h, 0.5),
        b0: rng.vec(n * h, 0.1),
        w1: rng.vec(n * h * d, 0.5),
        b1: rng.vec(n * d, 0.1),
        gelu: Gelu::Tanh,
        dispatch_bfloat16: false,
    }
}

fn run(l: &SparseMoe, x: &Tensor) -> SparseOutput {
    pollster::block_on(l.forward(x)).unwrap()
}

// vmoe's default capacity rule (rounded up to a multiple of 4) and the unrounded one (multiple 1,
// the shipped models'); with 4, small groups get capacities above their token count.
const TC1: Router = Router::tokens_choice(1, 1.0);
const TC2: Router = Router::TokensChoice { k: 2, capacity_factor: 0.75, capacity_multiple_of: 1 };
const EC: Router = Router::experts_choice(1.0);
const EC1: Router = Router::ExpertsChoice { capacity_factor: 1.0, capacity_multiple_of: 1 };

#[test]
fn sparse_layers_route_exactly_and_match_the_reference() {
    // (b, m, d, n, h, group images): odd sizes, groups that do not divide the batch, one-token images.
    let shapes = [(3, 7, 5, 3, 9, 2), (4, 49, 16, 8, 32, 2), (5, 1, 4, 2, 3, 3), (2, 65, 8, 4, 4, 1), (9, 13, 12, 5, 7, 4)];
    for (i, &(b, m, d, n, h, gs)) in shapes.iter().enumerate() {
        for router in [TC1, TC2, EC, EC1] {
            if router.k() > n {
                continue;
            }
            let mut rng = Rng::new(500 + i as u64);
            let w = layer(&mut rng, d, n, h, router, gs);
            let l = pollster::block_on(SparseMoe::new(ctx(), &w)).unwrap();
            let x = Tensor::new(vec![b, m, d], rng.vec(b * m * d, 1.0)).unwrap();
            let got = run(&l, &x);
            let what = format!("shape {i} {router:?}");
            // The kernel's routing is the CPU rule applied to the GPU's gates, to the bit.
            for g in groups(b, m, gs) {
                let want = route(&router, &got.gates.data[g.start * n..g.end * n], n);
                let have: Vec<Option<usize>> = got.slots[g.start * n..g.end * n].iter().map(|s| s.map(|v| v as usize)).collect();
                assert_eq!(have, want, "{what}: routing of tokens {g:?}");
            }
            let reference = softmoe::reference::sparse_moe_f64(&w, &to_f64(&x.data), b, m);
            // Gates: a length-d logits GEMM and a softmax over n experts, values ≤ 1.
            assert_close(&format!("{what} gates"), &to_f64(&got.gates.data), &reference.gates, f32_tol(d.max(n), 1.0));
            let reference_slots: Vec<Option<u32>> = reference.slots.iter().map(|s| s.map(|v| v as u32)).collect();
            assert_eq!(got.slots, reference_slots, "{what}: routing differs from the f64 reference's");
            // y: the gates' error and the experts' two GEMMs (length ≤ max(d, h)) on values ≤ max |y|.
            let tol = 2.0 * f32_tol(d.max(h).max(n), max_abs("y", &reference.y).max(1.0));
            assert_close(&format!("{what} y"), &to_f64(&got.y.data), &reference.y, tol);
            // Tokens Choice k = 1 with capacity 1.0 keeps some tokens whatever the balance; every
            // expert of Experts Choice fills its capacity, or takes every token of a group smaller
            // than it.
            let st = got.stats();
            assert!(st.dropped < b * m, "{what}: every token dropped");
            if let Router::ExpertsChoice { .. } = router {
                let full: usize = groups(b, m, gs).iter().map(|g| router.capacity(g.len(), n).min(g.len())).sum();
                assert!(st.load.iter().all(|&l| l == full), "{what}: expert loads {:?}, want {full} each", st.load);
            }
        }
    }
}

#[test]
fn groups_do_not_interact_but_images_within_a_group_do() {
    let (m, d, n, h) = (49, 16, 8, 24);
    for router in [TC1, EC] {
        let mut rng = Rng::new(600);
        let w = layer(&mut rng, d, n, h, router, 4);
        let l = pollster::block_on(SparseMoe::new(ctx(), &w)).unwrap();
        let x = Tensor::new(vec![8, m, d], rng.vec(8 * m * d, 1.0)).unwrap();
        let base = run(&l, &x);
        // Changing images 4..8 (the second group) leaves the first group's output bit-identical.
        let mut other = x.clone();
        other.data[4 * m * d..].iter_mut().for_each(|v| *v = -*v * 1.5);
        let changed = run(&l, &other);
        assert_eq!(base.y.data[..4 * m * d], changed.y.data[..4 * m * d], "{router:?}: group 0 saw group 1");
        // Image 3 alone (its own group, smaller capacity) differs from image 3 in its group of 4,
        // where Tokens Choice fills the buffers with the 3 images before it first. (Image 0 need
        // not: alone, vmoe's capacity 8 of 8 experts may hold all its 49 tokens.)
        let alone = run(&l, &Tensor::new(vec![1, m, d], x.data[3 * m * d..4 * m * d].to_vec()).unwrap());
        assert_ne!(alone.y.data, base.y.data[3 * m * d..4 * m * d], "{router:?}: no batch effect at all");
    }
}

#[test]
fn bad_sparse_configs_are_refused_by_name() {
    let mut rng = Rng::new(1);
    let mut w = layer(&mut rng, 4, 2, 3, Router::tokens_choice(3, 1.0), 1);
    let e = pollster::block_on(SparseMoe::new(ctx(), &w)).err().expect("k > n refused").to_string();
    assert!(e.contains("router_k"), "{e}");
    w.router = TC1;
    w.wr.pop();
    let e = pollster::block_on(SparseMoe::new(ctx(), &w)).err().expect("short router kernel refused").to_string();
    assert!(e.contains("Router/dense/kernel"), "{e}");
}

#[test]
fn sparse_models_match_the_reference() {
    for (i, router) in [TC1, TC2, EC].into_iter().enumerate() {
        let mut c = vit_config(28, 1, 4, 16, 2, 2, &[1], 4, 0);
        c.router = Some(router);
        c.group_size = 2;
        let mut rng = Rng::new(700 + i as u64);
        let w = random_vit(&mut rng, &c);
        let vit = pollster::block_on(Vit::new(ctx(), &w)).unwrap();
        let data: Vec<f32> = rng.vec(5 * 784, 0.5).into_iter().map(|v| v + 0.5).collect();
        let x = Tensor::new(vec![5, 28, 28], data).unwrap();
        let got = pollster::block_on(vit.classify_with_maps(&x)).unwrap();
        let want = softmoe::reference::vit_forward(&w, &x).unwrap();
        // As tests/gpu/vit_model.rs: one f32 bound per block through the residual stream.
        let k = c.mlp_dim.max(c.expert_mlp_dim).max(c.tokens());
        let tol = (c.num_layers + 1) as f64 * f32_tol(k, max_abs("logits", &want.logits).max(1.0));
        assert_close(&format!("{router:?} logits"), &to_f64(&got.logits.data), &want.logits, tol);
        assert_eq!(got.routes.len(), 1);
        let slots: Vec<Option<u32>> = want.routes[0].1.slots.iter().map(|s| s.map(|v| v as u32)).collect();
        assert_eq!(got.routes[0].slots, slots, "{router:?}: model routing");
        assert!(got.maps.is_empty(), "a sparse model has no Soft MoE maps");
    }
}
