// Softmax cross-entropy with label smoothing, one invocation per example: the target puts 1 − ε on
// the label and ε/K on every one of the K classes, loss = −Σ_k t_k log p_k. Writes the loss and the
// predicted class (the first largest logit, as `model::argmax`), read back for the loss trace and the
// training accuracy; the mean over the batch is taken on the host, in example order.

struct CrossEntropyParams {
    batch: u32,
    classes: u32,
    smoothing: f32,
    // The gradient's factor: 1 / batch for the batch mean.
    grad_scale: f32,
}

@group(0) @binding(0) var<uniform> p: CrossEntropyParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
// [batch, 2]: loss, predicted class.
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let e = item_index(invocation);
    if (e >= p.batch) {
        return;
    }
    let base = e * p.classes;
    var mx = logits[base];
    var arg = 0u;
    for (var k = 1u; k < p.classes; k++) {
        if (logits[base + k] > mx) {
            mx = logits[base + k];
            arg = k;
        }
    }
    var sum = 0.0;
    for (var k = 0u; k < p.classes; k++) {
        sum += exp(logits[base + k] - mx);
    }
    let lse = mx + log(sum);
    var mean_log_p = 0.0;
    for (var k = 0u; k < p.classes; k++) {
        mean_log_p += logits[base + k] - lse;
    }
    mean_log_p /= f32(p.classes);
    let label_log_p = logits[base + labels[e]] - lse;
    out[2u * e] = -(1.0 - p.smoothing) * label_log_p - p.smoothing * mean_log_p;
    out[2u * e + 1u] = f32(arg);
}
