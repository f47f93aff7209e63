// The backward of layer_norm.wgsl for the input, one invocation per row. Mean and 1/σ are
// recomputed by the forward's own layer_norm_stats (layer_norm_stats.wgsl) and kept in `stats`
// [rows, 2] for layer_norm_param_grad.wgsl. With x̂ = (x − mean)/σ and ĝ = dy ⊙ scale:
//   dx = (ĝ − mean(ĝ) − x̂ · mean(ĝ ⊙ x̂)) / σ,
// written into dx or (flag bit 0) added to it: the residual stream's gradient.

struct LayerNormBackwardParams {
    rows: u32,
    d: u32,
    eps: f32,
    flags: u32,
}

@group(0) @binding(0) var<uniform> p: LayerNormBackwardParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> affine: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;

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
    stats[2u * row] = mean;
    stats[2u * row + 1u] = inv;
    var g_sum = 0.0;
    var gx_sum = 0.0;
    for (var j = 0u; j < p.d; j++) {
        let g = dy[base + j] * affine[j];
        g_sum += g;
        gx_sum = fma(g, (src[base + j] - mean) * inv, gx_sum);
    }
    let g_mean = g_sum / f32(p.d);
    let gx_mean = gx_sum / f32(p.d);
    let add = (p.flags & 1u) != 0u;
    for (var j = 0u; j < p.d; j++) {
        let xh = (src[base + j] - mean) * inv;
        var v = (dy[base + j] * affine[j] - g_mean - xh * gx_mean) * inv;
        if (add) {
            v += dx[base + j];
        }
        dx[base + j] = v;
    }
}
