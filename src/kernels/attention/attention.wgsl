// Multi-head self-attention, one invocation per (example, head, query token):
// out = softmax(q·kᵀ / sqrt(dh)) v, from fused qkv rows [b·m, 3d] (q | k | v, head-major) to [b·m, d].
// Two passes over the keys (max, then exp-weighted sum), keys in ascending order.

struct AttentionParams {
    batch: u32,
    tokens: u32,
    heads: u32,
    head_dim: u32,
}

@group(0) @binding(0) var<uniform> p: AttentionParams;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

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
    var acc: array<f32, MAX_HEAD_DIM>;
    var sum = 0.0;
    for (var t = 0u; t < p.tokens; t++) {
        let k = (row0 + t) * 3u * d + d + h * p.head_dim;
        var s = 0.0;
        for (var j = 0u; j < p.head_dim; j++) {
            s = fma(qkv[q + j], qkv[k + j], s);
        }
        let w = exp(s * scale - mx);
        sum += w;
        let v = k + d;
        for (var j = 0u; j < p.head_dim; j++) {
            acc[j] = fma(w, qkv[v + j], acc[j]);
        }
    }
    let o = (row0 + i) * d + h * p.head_dim;
    for (var j = 0u; j < p.head_dim; j++) {
        out[o + j] = acc[j] / sum;
    }
}
