// AdamW with decoupled weight decay, one invocation per value of one tensor, the operations in
// candle-nn's order (trainer/: AdamW::step), each in f32:
//   g = grad · clip;  m = m·β1 + g·(1 − β1);  v = v·β2 + g²·(1 − β2)
//   θ = θ·(1 − lr·λ) − (m·scale_m / (sqrt(v·scale_v) + eps))·lr,  scale_m = 1/(1 − β1^t), …
// The values that change every step come from `hyper` (written before each step's submission; the
// clipping factor by grad_norm_finish.wgsl): [lr, 1 − lr·λ, scale_m, scale_v, clip, norm, …].

struct AdamwParams {
    count: u32,
    // 1: this tensor is weight-decayed (hyper[1]), 0: not (factor 1).
    decay: u32,
    beta1: f32,
    beta2: f32,
    one_minus_beta1: f32,
    one_minus_beta2: f32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: AdamwParams;
@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
// m [count] then v [count].
@group(0) @binding(3) var<storage, read_write> moments: array<f32>;
@group(0) @binding(4) var<storage, read> hyper: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let i = item_index(invocation);
    if (i >= p.count) {
        return;
    }
    let lr = hyper[0];
    var keep = 1.0;
    if (p.decay != 0u) {
        keep = hyper[1];
    }
    let g = grad[i] * hyper[4];
    let m = moments[i] * p.beta1 + g * p.one_minus_beta1;
    let v = moments[p.count + i] * p.beta2 + (g * g) * p.one_minus_beta2;
    moments[i] = m;
    moments[p.count + i] = v;
    let m_hat = m * hyper[2];
    let v_hat = v * hyper[3];
    let step = (m_hat / (sqrt(v_hat) + p.eps)) * lr;
    param[i] = param[i] * keep - step;
}
