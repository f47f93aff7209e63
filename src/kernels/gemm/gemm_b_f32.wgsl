// B read as vec4 of f32 (binding 5), for gemm_vec4.wgsl.

@group(0) @binding(5) var<storage, read> b4: array<vec4<f32>>;

fn load_b4(i: u32) -> vec4<f32> {
    return b4[i];
}
