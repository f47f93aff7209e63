// The backward of dispatch_softmax.wgsl, one invocation per (example, slot): D is a softmax over
// the tokens of each slot's column, so dL_ij = D_ij (dD_ij − Σ_i' dD_i'j D_i'j), tokens in ascending
// order. Writes dL (the combine softmax's backward adds its part after).

struct DispatchSoftmaxParams {
    batch: u32,
    tokens: u32,
    slots: u32,
    items: u32,
}

@group(0) @binding(0) var<uniform> p: DispatchSoftmaxParams;
@group(0) @binding(1) var<storage, read> dispatch: array<f32>;
@group(0) @binding(2) var<storage, read> d_dispatch: array<f32>;
@group(0) @binding(3) var<storage, read_write> d_logits: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let id = item_index(invocation);
    if (id >= p.items) {
        return;
    }
    let b = id / p.slots;
    let base = b * p.tokens * p.slots + id % p.slots;
    var dot = 0.0;
    for (var i = 0u; i < p.tokens; i++) {
        let at = base + i * p.slots;
        dot = fma(d_dispatch[at], dispatch[at], dot);
    }
    for (var i = 0u; i < p.tokens; i++) {
        let at = base + i * p.slots;
        d_logits[at] = dispatch[at] * (d_dispatch[at] - dot);
    }
}
