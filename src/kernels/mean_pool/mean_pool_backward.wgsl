// The backward of mean_pool.wgsl: dx[b, t, j] = dpooled[b, j] / m, one invocation per value of dx.

struct MeanPoolBackwardParams {
    batch: u32,
    tokens: u32,
    d: u32,
}

@group(0) @binding(0) var<uniform> p: MeanPoolBackwardParams;
@group(0) @binding(1) var<storage, read> d_pooled: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let i = item_index(invocation);
    if (i >= p.batch * p.tokens * p.d) {
        return;
    }
    let b = i / (p.tokens * p.d);
    dx[i] = d_pooled[b * p.d + i % p.d] / f32(p.tokens);
}
