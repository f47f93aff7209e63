// Combine weights C = softmax over all slots, per token: one invocation per (example, token) row.

struct Params {
    rows: u32,
    slots: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> combine: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lidx: u32,
) {
    let row = (wid.x + wid.y * nwg.x) * 64u + lidx;
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
