// Row reductions for router_softmaxes.wgsl through workgroup memory (any device): `p.row_lanes`
// invocations (a power of two ≤ 64, about one per 8 slots, chosen by the host) reduce one row by
// halving, 256 / row_lanes rows at a time, so few slots do not pay for many barriers.

var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    let lanes = p.row_lanes;
    route(workgroup_index(wid, nwg), t, t / lanes, t % lanes, WG / lanes, lanes);
}

fn group_max(v: f32, t: u32) -> f32 {
    let lanes = p.row_lanes;
    red[t] = v;
    workgroupBarrier();
    for (var off = lanes >> 1u; off > 0u; off >>= 1u) {
        if ((t % lanes) < off) {
            red[t] = max(red[t], red[t + off]);
        }
        workgroupBarrier();
    }
    let r = red[t - t % lanes];
    workgroupBarrier();
    return r;
}

fn group_sum(v: f32, t: u32) -> f32 {
    let lanes = p.row_lanes;
    red[t] = v;
    workgroupBarrier();
    for (var off = lanes >> 1u; off > 0u; off >>= 1u) {
        if ((t % lanes) < off) {
            red[t] = red[t] + red[t + off];
        }
        workgroupBarrier();
    }
    let r = red[t - t % lanes];
    workgroupBarrier();
    return r;
}
