// Output of a sparse MoE: y[t] = Σ over experts e that took token t of gate(t, e) · Ỹ[slot],
// summed in expert order. One invocation per (token, feature); `residual` adds into y.

struct SparseCombineParams {
    rows: u32,
    n: u32,
    group_tokens: u32,
    cap: u32,
    d: u32,
    residual: u32,
}

@group(0) @binding(0) var<uniform> p: SparseCombineParams;
@group(0) @binding(1) var<storage, read> gates: array<f32>;
@group(0) @binding(2) var<storage, read> slot_of: array<u32>;
@group(0) @binding(3) var<storage, read> ys: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

const NONE: u32 = 0xffffffffu;

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let idx = item_index(invocation);
    if (idx >= p.rows * p.d) {
        return;
    }
    let t = idx / p.d;
    let k = idx % p.d;
    let g = t / p.group_tokens;
    var acc = 0.0;
    for (var e = 0u; e < p.n; e++) {
        let s = slot_of[t * p.n + e];
        if (s != NONE) {
            acc += gates[t * p.n + e] * ys[((g * p.n + e) * p.cap + s) * p.d + k];
        }
    }
    if (p.residual != 0u) {
        y[idx] += acc;
    } else {
        y[idx] = acc;
    }
}
