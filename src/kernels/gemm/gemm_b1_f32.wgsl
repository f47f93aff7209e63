// B read as vec4 of f32 from one buffer (binding 5): gemm_b_f32.wgsl without its switch over
// buffers, which a CPU adapter runs case after case, every case's loads masked but still looped.

@group(0) @binding(5) var<storage, read> b4_0: array<vec4<f32>>;

fn select_b(z: u32) {}

fn load_b4(i: u32) -> vec4<f32> {
    return b4_0[i];
}
