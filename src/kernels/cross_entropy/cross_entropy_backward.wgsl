// d loss / d logits = (softmax(logits) − target) · grad_scale, one invocation per example.

struct CrossEntropyParams {
    batch: u32,
    classes: u32,
    smoothing: f32,
    grad_scale: f32,
}

@group(0) @binding(0) var<uniform> p: CrossEntropyParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> grad: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let e = item_index(invocation);
    if (e >= p.batch) {
        return;
    }
    let base = e * p.classes;
    var mx = logits[base];
    for (var k = 1u; k < p.classes; k++) {
        mx = max(mx, logits[base + k]);
    }
    var sum = 0.0;
    for (var k = 0u; k < p.classes; k++) {
        sum += exp(logits[base + k] - mx);
    }
    let spread = p.smoothing / f32(p.classes);
    let label = labels[e];
    for (var k = 0u; k < p.classes; k++) {
        var goal = spread;
        if (k == label) {
            goal += 1.0 - p.smoothing;
        }
        grad[base + k] = (exp(logits[base + k] - mx) / sum - goal) * p.grad_scale;
    }
}
