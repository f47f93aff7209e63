// B read as vec4 of f32, for the vec4 GEMMs (vec4, split-K, tiled vec4). B's batch entries may
// lie in up to four buffers (bindings 5…8) of p.b_group entries each — the expert kernels split
// over storage bindings, all read by one dispatch; `select_b(z)` picks batch entry z's buffer.

@group(0) @binding(5) var<storage, read> b4_0: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> b4_1: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> b4_2: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> b4_3: array<vec4<f32>>;

var<private> b_buffer: u32;

fn select_b(z: u32) {
    b_buffer = z / p.b_group;
}

// The branch is uniform over a workgroup (z is).
fn load_b4(i: u32) -> vec4<f32> {
    switch b_buffer {
        case 0u: {
            return b4_0[i];
        }
        case 1u: {
            return b4_1[i];
        }
        case 2u: {
            return b4_2[i];
        }
        default: {
            return b4_3[i];
        }
    }
}
