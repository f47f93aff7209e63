// soft-moe-pytorch's RMSNorm over `count` strided vectors of `len` values:
// v / max(‖v‖, 1e-12) · mult · gamma[k] (F.normalize's clamp, then · √len · gamma, in that order).
// Strides make one kernel serve token rows of X and slot columns of Φ, as in l2_normalize.wgsl.

struct RmsNormParams {
    count: u32,
    len: u32,
    vec_stride: u32,
    elem_stride: u32,
    mult: f32,
}

@group(0) @binding(0) var<uniform> p: RmsNormParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> gamma: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

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
    let norm = max(sqrt(ss), 1e-12);
    for (var k = 0u; k < p.len; k++) {
        let i = base + k * p.elem_stride;
        dst[i] = src[i] / norm * p.mult * gamma[k];
    }
}
