// What the cross-entropy loss and its backward share: the parameters, the inputs, and each
// example's softmax statistics, computed once here so that the gradient's softmax is the loss's.

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

// The row's largest logit, Σ exp(logit − largest), and the first class holding the largest.
struct SoftmaxStats {
    mx: f32,
    sum: f32,
    arg: u32,
}

fn softmax_stats(base: u32) -> SoftmaxStats {
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
    return SoftmaxStats(mx, sum, arg);
}
