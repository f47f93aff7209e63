// L2-normalises `count` vectors of `len` values: v · 1/sqrt(‖v‖² + 1e-6) (vmoe's eps inside the sqrt).
// Strides make one kernel serve token rows of X and slot columns of Φ.

struct L2NormalizeParams {
    count: u32,
    len: u32,
    vec_stride: u32,
    elem_stride: u32,
}

@group(0) @binding(0) var<uniform> p: L2NormalizeParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let v = item_index(invocation);
    if (v >= p.count) {
        return;
    }
    let base = v * p.vec_stride;
    var ss = 0.0;
    for (var k = 0u; k < p.len; k++) {
        let x = src[base + k * p.elem_stride];
        ss = fma(x, x, ss);
    }
    let inv = inverseSqrt(ss + 1e-6);
    for (var k = 0u; k < p.len; k++) {
        let i = base + k * p.elem_stride;
        dst[i] = src[i] * inv;
    }
}
