// LayerNorm's parameter gradients, one invocation per column j of the packed [scale | bias]:
// d scale_j = Σ_rows dy · x̂, d bias_j = Σ_rows dy, rows in ascending order, x̂ from the row
// statistics layer_norm_backward.wgsl kept. Written to grad [scale (d) | bias (d)].

struct LayerNormParamGradParams {
    rows: u32,
    d: u32,
}

@group(0) @binding(0) var<uniform> p: LayerNormParamGradParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> stats: array<f32>;
@group(0) @binding(3) var<storage, read> dy: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let j = item_index(invocation);
    if (j >= p.d) {
        return;
    }
    var ds = 0.0;
    var db = 0.0;
    for (var r = 0u; r < p.rows; r++) {
        let at = r * p.d + j;
        let xh = (src[at] - stats[2u * r]) * stats[2u * r + 1u];
        ds = fma(dy[at], xh, ds);
        db += dy[at];
    }
    grad[j] = ds;
    grad[p.d + j] = db;
}
