// B stored as f16 in one buffer (binding 5), widened to f32 as it is read: gemm_b_f16.wgsl without
// its switch over buffers (see gemm_b1_f32.wgsl).

@group(0) @binding(5) var<storage, read> b4_0: array<vec4<f16>>;

fn select_b(z: u32) {}

fn load_b4(i: u32) -> vec4<f32> {
    return vec4<f32>(b4_0[i]);
}
