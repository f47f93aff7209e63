// LayerNorm over the last axis, one invocation per row: (x − mean) / sqrt(var + eps) · scale + bias,
// with the variance of the centred values (two passes, as accurate as f32 allows; layer_norm_stats.wgsl).
// `affine` holds scale (d values) then bias (d values).

struct LayerNormParams {
    rows: u32,
    d: u32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: LayerNormParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> affine: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let row = item_index(invocation);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.d;
    let stat = layer_norm_stats(base);
    let mean = stat.x;
    let inv = stat.y;
    for (var j = 0u; j < p.d; j++) {
        dst[base + j] = (src[base + j] - mean) * inv * affine[j] + affine[p.d + j];
    }
}
