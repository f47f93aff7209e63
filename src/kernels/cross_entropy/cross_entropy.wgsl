// Softmax cross-entropy with label smoothing, one invocation per example: the target puts 1 − ε on
// the label and ε/K on every one of the K classes, loss = −Σ_k t_k log p_k. Writes the loss and the
// predicted class (the first largest logit, as `model::argmax`), read back for the loss trace and the
// training accuracy; the mean over the batch is taken on the host, in example order.

// [batch, 2]: loss, predicted class.
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let e = item_index(invocation);
    if (e >= p.batch) {
        return;
    }
    let base = e * p.classes;
    let st = softmax_stats(base);
    let lse = st.mx + log(st.sum);
    var mean_log_p = 0.0;
    for (var k = 0u; k < p.classes; k++) {
        mean_log_p += logits[base + k] - lse;
    }
    mean_log_p /= f32(p.classes);
    let label_log_p = logits[base + labels[e]] - lse;
    out[2u * e] = -(1.0 - p.smoothing) * label_log_p - p.smoothing * mean_log_p;
    out[2u * e + 1u] = f32(st.arg);
}
