// Global average pooling over tokens: [b, m, d] → [b, d], one invocation per (example, channel),
// tokens summed in ascending order, then divided by m.

struct MeanPoolParams {
    batch: u32,
    tokens: u32,
    d: u32,
}

@group(0) @binding(0) var<uniform> p: MeanPoolParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> pooled: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let id = item_index(invocation);
    if (id >= p.batch * p.d) {
        return;
    }
    let b = id / p.d;
    let j = id % p.d;
    var sum = 0.0;
    for (var t = 0u; t < p.tokens; t++) {
        sum += x[(b * p.tokens + t) * p.d + j];
    }
    pooled[id] = sum / f32(p.tokens);
}
