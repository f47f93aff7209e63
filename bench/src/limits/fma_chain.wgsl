// Peak FMA throughput: each invocation runs CHAINS independent vec4 fma chains of STEPS steps in
// registers (independent so the ALUs pipeline them), then writes one value so nothing is dead code.
// x <- x * m + k converges to 1 and never reaches denormals or infinities.

@group(0) @binding(0) var<storage, read_write> out: array<f32>;

const STEPS: u32 = 256u;

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 256u + gid.x;
    let s = f32(i & 0xffffu) * 1e-6;
    // m and k depend on the invocation so the compiler cannot fold the chain.
    let m = vec4<f32>(0.999 - s * 1e-3);
    let k = vec4<f32>(0.001 + s * 1e-3);
    var a = vec4<f32>(s, s + 0.1, s + 0.2, s + 0.3);
    var b = a + vec4<f32>(0.4);
    var c = a + vec4<f32>(0.8);
    var d = a + vec4<f32>(1.2);
    for (var t = 0u; t < STEPS; t++) {
        a = fma(a, m, k);
        b = fma(b, m, k);
        c = fma(c, m, k);
        d = fma(d, m, k);
    }
    let r = a + b + c + d;
    out[i % arrayLength(&out)] = r.x + r.y + r.z + r.w;
}
