// The backward of attention.wgsl, first kernel: one invocation per (example, head, query token i),
// as the forward. With s_t = q_i·k_t / √dh, P_t = softmax_t(s), dP_t = dO_i·v_t and
// Δ = Σ_t P_t dP_t = dO_i·O_i:
//   dq_i = Σ_t P_t (dP_t − Δ) k_t / √dh,
// keys in ascending order. Keeps (max, Σ exp, Δ) of the row in `stats` for the key kernel
// (attention_backward_key.wgsl), which writes dk and dv.

struct AttentionBackwardParams {
    batch: u32,
    tokens: u32,
    heads: u32,
    head_dim: u32,
}

@group(0) @binding(0) var<uniform> p: AttentionBackwardParams;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> out: array<f32>;
@group(0) @binding(3) var<storage, read> d_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> d_qkv: array<f32>;
// [batch·heads·tokens, 4]: max, Σ exp, Δ, unused.
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;

const MAX_HEAD_DIM: u32 = 256u;

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let id = item_index(invocation);
    if (id >= p.batch * p.heads * p.tokens) {
        return;
    }
    let i = id % p.tokens;
    let h = (id / p.tokens) % p.heads;
    let b = id / (p.tokens * p.heads);
    let d = p.heads * p.head_dim;
    let row0 = b * p.tokens;
    let q = (row0 + i) * 3u * d + h * p.head_dim;
    let o = (row0 + i) * d + h * p.head_dim;
    let scale = inverseSqrt(f32(p.head_dim));

    var mx = -3.0e38;
    for (var t = 0u; t < p.tokens; t++) {
        let k = (row0 + t) * 3u * d + d + h * p.head_dim;
        var s = 0.0;
        for (var j = 0u; j < p.head_dim; j++) {
            s = fma(qkv[q + j], qkv[k + j], s);
        }
        mx = max(mx, s * scale);
    }
    var sum = 0.0;
    for (var t = 0u; t < p.tokens; t++) {
        let k = (row0 + t) * 3u * d + d + h * p.head_dim;
        var s = 0.0;
        for (var j = 0u; j < p.head_dim; j++) {
            s = fma(qkv[q + j], qkv[k + j], s);
        }
        sum += exp(s * scale - mx);
    }
    var delta = 0.0;
    for (var j = 0u; j < p.head_dim; j++) {
        delta = fma(d_out[o + j], out[o + j], delta);
    }
    var acc: array<f32, MAX_HEAD_DIM>;
    for (var t = 0u; t < p.tokens; t++) {
        let k = (row0 + t) * 3u * d + d + h * p.head_dim;
        let v = k + d;
        var s = 0.0;
        var dp = 0.0;
        for (var j = 0u; j < p.head_dim; j++) {
            s = fma(qkv[q + j], qkv[k + j], s);
            dp = fma(d_out[o + j], qkv[v + j], dp);
        }
        let ds = exp(s * scale - mx) / sum * (dp - delta) * scale;
        for (var j = 0u; j < p.head_dim; j++) {
            acc[j] = fma(ds, qkv[k + j], acc[j]);
        }
    }
    for (var j = 0u; j < p.head_dim; j++) {
        d_qkv[q + j] = acc[j];
    }
    stats[4u * id] = mx;
    stats[4u * id + 1u] = sum;
    stats[4u * id + 2u] = delta;
}
