// The global gradient norm, second pass, in invocation 0 alone: the partial sums added in order,
// norm = sqrt(total), and the clipping factor min(1, max_norm / (norm + 1e-6)) (1 when max_norm is
// 0: no clipping), written to the optimiser's step values (`hyper`, see adamw.wgsl).

struct GradNormFinishParams {
    partials: u32,
    max_norm: f32,
}

@group(0) @binding(0) var<uniform> p: GradNormFinishParams;
@group(0) @binding(1) var<storage, read> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> hyper: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    if (item_index(invocation) != 0u) {
        return;
    }
    var total = 0.0;
    for (var i = 0u; i < p.partials; i++) {
        total += partial[i];
    }
    let norm = sqrt(total);
    var clip = 1.0;
    if (p.max_norm > 0.0 && norm > p.max_norm) {
        clip = p.max_norm / (norm + 1e-6);
    }
    hyper[4] = clip;
    hyper[5] = norm;
}
