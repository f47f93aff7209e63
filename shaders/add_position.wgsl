// x[i] += pos[i mod period]: the learned position embedding, the same for every image.

struct Params {
    total: u32,
    period: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pos: array<f32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(64)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lidx: u32,
) {
    let i = (wid.x + wid.y * nwg.x) * 64u + lidx;
    if (i >= p.total) {
        return;
    }
    x[i] = x[i] + pos[i % p.period];
}
