// B stored as f16 (`enable f16;` heads the module), widened to f32 as it is read: expert weights at
// half the bytes. As gemm_b_f32.wgsl: up to four buffers (bindings 5…8), `select_b(z)` picks one.

@group(0) @binding(5) var<storage, read> b4_0: array<vec4<f16>>;
@group(0) @binding(6) var<storage, read> b4_1: array<vec4<f16>>;
@group(0) @binding(7) var<storage, read> b4_2: array<vec4<f16>>;
@group(0) @binding(8) var<storage, read> b4_3: array<vec4<f16>>;

var<private> b_buffer: u32;

fn select_b(z: u32) {
    b_buffer = z / p.b_group;
}

// The branch is uniform over a workgroup (z is).
fn load_b4(i: u32) -> vec4<f32> {
    switch b_buffer {
        case 0u: {
            return vec4<f32>(b4_0[i]);
        }
        case 1u: {
            return vec4<f32>(b4_1[i]);
        }
        case 2u: {
            return vec4<f32>(b4_2[i]);
        }
        default: {
            return vec4<f32>(b4_3[i]);
        }
    }
}
