// Sustained copy through the shader: each workgroup copies one contiguous block of 4 * 256 vec4s;
// invocation `lid` copies elements lid, lid + 256, lid + 512, lid + 768, so consecutive invocations
// touch consecutive vec4s (coalesced), and all four loads are issued before the first store.
// Written out rather than looped over a private array, which some compilers would spill to memory.

@group(0) @binding(0) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<f32>>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    // The grid may be folded into 2-D to fit max_compute_workgroups_per_dimension.
    let i = (wid.y * nwg.x + wid.x) * 1024u + lid;
    let n = arrayLength(&src);
    if i + 768u < n {
        let a = src[i];
        let b = src[i + 256u];
        let c = src[i + 512u];
        let d = src[i + 768u];
        dst[i] = a;
        dst[i + 256u] = b;
        dst[i + 512u] = c;
        dst[i + 768u] = d;
    } else {
        // The last, partial block.
        for (var j = i; j < n && j < i + 1024u; j += 256u) {
            dst[j] = src[j];
        }
    }
}
