// Combine weights C = softmax over all slots, per token: one invocation per (example, token) row.

struct CombineSoftmaxParams {
    rows: u32,
    slots: u32,
}

@group(0) @binding(0) var<uniform> p: CombineSoftmaxParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> combine: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let row = item_index(invocation);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.slots;
    var mx = logits[base];
    for (var j = 1u; j < p.slots; j++) {
        mx = max(mx, logits[base + j]);
    }
    var sum = 0.0;
    for (var j = 0u; j < p.slots; j++) {
        sum += exp(logits[base + j] - mx);
    }
    for (var j = 0u; j < p.slots; j++) {
        combine[base + j] = exp(logits[base + j] - mx) / sum;
    }
}
