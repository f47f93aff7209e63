// Row reductions for router_softmax.wgsl through workgroup memory (any device): 64 invocations
// reduce one row by halving, 4 rows at a time.

var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
) {
    softmaxes(wid.x + wid.y * nwg.x, t, Rows(t / 64u, 4u, t % 64u, 64u));
}

fn group_max(v: f32, t: u32) -> f32 {
    red[t] = v;
    workgroupBarrier();
    for (var off = 32u; off > 0u; off >>= 1u) {
        if ((t & 63u) < off) {
            red[t] = max(red[t], red[t + off]);
        }
        workgroupBarrier();
    }
    let r = red[t & ~63u];
    workgroupBarrier();
    return r;
}

fn group_sum(v: f32, t: u32) -> f32 {
    red[t] = v;
    workgroupBarrier();
    for (var off = 32u; off > 0u; off >>= 1u) {
        if ((t & 63u) < off) {
            red[t] = red[t] + red[t + off];
        }
        workgroupBarrier();
    }
    let r = red[t & ~63u];
    workgroupBarrier();
    return r;
}
