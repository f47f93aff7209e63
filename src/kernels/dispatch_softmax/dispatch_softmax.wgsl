// Dispatch weights D = softmax over the tokens of each example, per slot: one invocation per (example, slot).
// Logits and D are [batch, tokens, slots]; neighbouring invocations read neighbouring slots (coalesced).

struct DispatchSoftmaxParams {
    batch: u32,
    tokens: u32,
    slots: u32,
    items: u32,
}

@group(0) @binding(0) var<uniform> p: DispatchSoftmaxParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> dispatch: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let id = item_index(invocation);
    if (id >= p.items) {
        return;
    }
    let b = id / p.slots;
    let base = b * p.tokens * p.slots + id % p.slots;
    var mx = logits[base];
    for (var i = 1u; i < p.tokens; i++) {
        mx = max(mx, logits[base + i * p.slots]);
    }
    var sum = 0.0;
    for (var i = 0u; i < p.tokens; i++) {
        sum += exp(logits[base + i * p.slots] - mx);
    }
    for (var i = 0u; i < p.tokens; i++) {
        let at = base + i * p.slots;
        dispatch[at] = exp(logits[at] - mx) / sum;
    }
}
