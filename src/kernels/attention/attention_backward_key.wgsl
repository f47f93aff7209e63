// The backward of attention.wgsl, second kernel: one invocation per (example, head, key token t),
// queries in ascending order, with each query's (max, Σ exp, Δ) from attention_backward_query.wgsl:
//   dv_t = Σ_i P_it dO_i,   dk_t = Σ_i P_it (dP_it − Δ_i) q_i / √dh.

struct AttentionBackwardParams {
    batch: u32,
    tokens: u32,
    heads: u32,
    head_dim: u32,
}

@group(0) @binding(0) var<uniform> p: AttentionBackwardParams;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read> d_out: array<f32>;
@group(0) @binding(3) var<storage, read> stats: array<f32>;
@group(0) @binding(4) var<storage, read_write> d_qkv: array<f32>;

const MAX_HEAD_DIM: u32 = 256u;

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let id = item_index(invocation);
    if (id >= p.batch * p.heads * p.tokens) {
        return;
    }
    let t = id % p.tokens;
    let h = (id / p.tokens) % p.heads;
    let b = id / (p.tokens * p.heads);
    let d = p.heads * p.head_dim;
    let row0 = b * p.tokens;
    let k = (row0 + t) * 3u * d + d + h * p.head_dim;
    let v = k + d;
    let scale = inverseSqrt(f32(p.head_dim));
    let row_stats = (b * p.heads + h) * p.tokens;

    var dk: array<f32, MAX_HEAD_DIM>;
    var dv: array<f32, MAX_HEAD_DIM>;
    for (var i = 0u; i < p.tokens; i++) {
        let q = (row0 + i) * 3u * d + h * p.head_dim;
        let o = (row0 + i) * d + h * p.head_dim;
        var s = 0.0;
        var dp = 0.0;
        for (var j = 0u; j < p.head_dim; j++) {
            s = fma(qkv[q + j], qkv[k + j], s);
            dp = fma(d_out[o + j], qkv[v + j], dp);
        }
        let st = 4u * (row_stats + i);
        let pr = exp(s * scale - stats[st]) / stats[st + 1u];
        let ds = pr * (dp - stats[st + 2u]) * scale;
        for (var j = 0u; j < p.head_dim; j++) {
            dv[j] = fma(pr, d_out[o + j], dv[j]);
            dk[j] = fma(ds, qkv[q + j], dk[j]);
        }
    }
    for (var j = 0u; j < p.head_dim; j++) {
        d_qkv[k + j] = dk[j];
        d_qkv[v + j] = dv[j];
    }
}
