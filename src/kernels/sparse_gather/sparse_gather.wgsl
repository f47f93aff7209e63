// Expert inputs of a sparse MoE: slot (group, expert e, c) gets the token that took slot c of e in
// that group, or zeros when none did. One invocation per slot; buffers are [groups, n·cap, d].

struct SparseGatherParams {
    rows: u32,
    n: u32,
    group_tokens: u32,
    cap: u32,
    d: u32,
    slots: u32,
}

@group(0) @binding(0) var<uniform> p: SparseGatherParams;
@group(0) @binding(1) var<storage, read> slot_of: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> xs: array<f32>;

const NONE: u32 = 0xffffffffu;

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let idx = item_index(invocation);
    if (idx >= p.slots) {
        return;
    }
    let per_group = p.n * p.cap;
    let g = idx / per_group;
    let e = (idx % per_group) / p.cap;
    let c = idx % p.cap;
    let start = g * p.group_tokens;
    let end = min(start + p.group_tokens, p.rows);
    var token = NONE;
    for (var u = start; u < end; u++) {
        if (slot_of[u * p.n + e] == c) {
            token = u;
            break;
        }
    }
    let out = idx * p.d;
    if (token == NONE) {
        for (var k = 0u; k < p.d; k++) {
            xs[out + k] = 0.0;
        }
    } else {
        for (var k = 0u; k < p.d; k++) {
            xs[out + k] = x[token * p.d + k];
        }
    }
}
