// Row reductions for router_softmaxes.wgsl with subgroup operations: each subgroup reduces one row.
// Assumes subgroups are consecutive runs of local_invocation_index, as on every known device. No
// `enable subgroups;`: wgpu takes subgroup operations from the device feature, and its WGSL front end
// does not accept the directive yet.

@compute @workgroup_size(WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) t: u32,
    @builtin(subgroup_size) sg: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    route(workgroup_index(wid, nwg), t, t / sg, lane, WG / sg, sg);
}

fn group_max(v: f32, t: u32) -> f32 {
    return subgroupMax(v);
}

fn group_sum(v: f32, t: u32) -> f32 {
    return subgroupAdd(v);
}
