// d loss / d logits = (softmax(logits) − target) · grad_scale, one invocation per example (the
// softmax of cross_entropy_common.wgsl, as the loss's).

@group(0) @binding(3) var<storage, read_write> grad: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let e = item_index(invocation);
    if (e >= p.batch) {
        return;
    }
    let base = e * p.classes;
    let st = softmax_stats(base);
    let spread = p.smoothing / f32(p.classes);
    let label = labels[e];
    for (var k = 0u; k < p.classes; k++) {
        var goal = spread;
        if (k == label) {
            goal += 1.0 - p.smoothing;
        }
        grad[base + k] = (exp(logits[base + k] - st.mx) / st.sum - goal) * p.grad_scale;
    }
}
