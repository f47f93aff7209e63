// The backward of l2_normalize.wgsl over strided vectors, one invocation per vector: with
// r = 1/sqrt(‖x‖² + 1e-6) (squares fma'd as the forward sums them) and y = r x,
//   dx = r (g − y (y·g)),
// written into dx or (flag bit 0) added to it (the tokens' gradient also comes through X̃ = DᵀX).

struct L2NormalizeBackwardParams {
    count: u32,
    len: u32,
    vec_stride: u32,
    elem_stride: u32,
    flags: u32,
}

@group(0) @binding(0) var<uniform> p: L2NormalizeBackwardParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let v = item_index(invocation);
    if (v >= p.count) {
        return;
    }
    let base = v * p.vec_stride;
    var ss = 0.0;
    var xg = 0.0;
    for (var k = 0u; k < p.len; k++) {
        let i = base + k * p.elem_stride;
        ss = fma(src[i], src[i], ss);
        xg = fma(src[i], dy[i], xg);
    }
    let inv = inverseSqrt(ss + 1e-6);
    let yg = xg * inv;
    let add = (p.flags & 1u) != 0u;
    for (var k = 0u; k < p.len; k++) {
        let i = base + k * p.elem_stride;
        var g = inv * (dy[i] - src[i] * inv * yg);
        if (add) {
            g += dx[i];
        }
        dx[i] = g;
    }
}
