// The backward of combine_softmax.wgsl, one invocation per (example, token) row: C is a softmax
// over the slots of each row, so dL_ij (+)= C_ij (dC_ij − Σ_j' dC_ij' C_ij'), slots in ascending
// order; flag bit 0 adds onto dL (the dispatch softmax's part, when both came from one L).

struct CombineSoftmaxBackwardParams {
    rows: u32,
    slots: u32,
    flags: u32,
}

@group(0) @binding(0) var<uniform> p: CombineSoftmaxBackwardParams;
@group(0) @binding(1) var<storage, read> combine: array<f32>;
@group(0) @binding(2) var<storage, read> d_combine: array<f32>;
@group(0) @binding(3) var<storage, read_write> d_logits: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let row = item_index(invocation);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.slots;
    var dot = 0.0;
    for (var j = 0u; j < p.slots; j++) {
        dot = fma(d_combine[base + j], combine[base + j], dot);
    }
    let add = (p.flags & 1u) != 0u;
    for (var j = 0u; j < p.slots; j++) {
        var v = combine[base + j] * (d_combine[base + j] - dot);
        if (add) {
            v += d_logits[base + j];
        }
        d_logits[base + j] = v;
    }
}
