//! Endurance: 10,000 forwards in a row with memory that stays flat. Its own test binary, so no other
//! test allocates in the process while resident memory is measured.

use softmoe::random::{random_input, random_layer, LayerShape, Rng};
use softmoe::{Gelu, GpuContext, GpuOptions, SoftMoe, Tensor};

/// Resident memory of this process in bytes (Linux).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4096
}

#[test]
fn ten_thousand_forwards_keep_memory_flat() {
    let opts = GpuOptions { webgpu_default_limits: std::env::var_os("SOFTMOE_TEST_WEBGPU_LIMITS").is_some(), ..Default::default() };
    let ctx = match pollster::block_on(GpuContext::with_options(opts)) {
        Ok(c) => c,
        Err(e) => panic!("GPU tests need a wgpu adapter (CI installs mesa-vulkan-drivers): {e}"),
    };
    let mut rng = Rng::new(530);
    let w = random_layer(&mut rng, LayerShape { d: 16, n: 4, p: 2, h: 32, scale: 4.0, gelu: Gelu::Tanh, normalize: true });
    let layer = pollster::block_on(SoftMoe::new(ctx.clone(), &w)).unwrap();
    // Five shapes in turn, more than the layer keeps plans for, so plans are built, reused and evicted.
    let inputs: Vec<Tensor> = [(1, 7), (3, 16), (2, 49), (5, 3), (4, 11)].iter().map(|&(b, m)| random_input(&mut rng, b, m, 16)).collect();
    for x in &inputs {
        for _ in 0..50 {
            pollster::block_on(layer.forward(x)).unwrap();
        }
    }
    let before = rss();
    let (created, idle) = (ctx.pool.created(), ctx.pool.free_bytes());
    let first = pollster::block_on(layer.forward(&inputs[0])).unwrap();
    for i in 0..10_000 {
        let out = pollster::block_on(layer.forward(&inputs[i % inputs.len()])).unwrap();
        if i % inputs.len() == 0 {
            assert_eq!(out.y.data, first.y.data, "forward {i} changed its answer");
        }
    }
    let after = rss();
    eprintln!(
        "endurance: 10,000 forwards; resident memory {:.1} MB before, {:.1} MB after; pool holds {:.1} KB idle, created {} buffers",
        before as f64 / 1e6,
        after as f64 / 1e6,
        ctx.pool.free_bytes() as f64 / 1e3,
        ctx.pool.created()
    );
    let growth = after as i64 - before as i64;
    assert!(growth < 8 << 20, "resident memory grew by {growth} bytes over 10,000 forwards");
    // Warm, every forward's buffers come back to the pool and are lent again: none is created, and
    // the idle memory is what it was (a buffer kept by a plan or leaked would show in one of the two).
    assert_eq!(ctx.pool.created(), created, "10,000 warm forwards created new buffers instead of reusing the pool's");
    assert_eq!(ctx.pool.free_bytes(), idle, "the pool's idle memory changed over 10,000 warm forwards");
}
