// B stored as f16 (binding 5; `enable f16;` heads the module), widened to f32 as it is read: expert
// weights at half the bytes. For gemm_vec4.wgsl.

@group(0) @binding(5) var<storage, read> b4: array<vec4<f16>>;

fn load_b4(i: u32) -> vec4<f32> {
    return vec4<f32>(b4[i]);
}
