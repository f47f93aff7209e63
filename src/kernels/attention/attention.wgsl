// Multi-head dot-product attention, one invocation per (example, head, query):
// out = softmax(q·kᵀ / sqrt(dh)) v. Queries come from `q` (rows of `q_row_stride`, examples
// `q_batch_stride` apart: the fused qkv rows for self-attention, or one probe row shared by every
// example, stride 0, for attention pooling), keys and values from `kv` rows of `kv_row_stride` at
// `k_offset` and `v_offset`, head-major; out is [b·queries, heads·dh].
// With `qk_norm` set, each head's query and key are first LayerNorm-ed over their dh values (no
// bias, as Flax's `normalize_qk`): (x − mean)/sqrt(var + eps)·scale, scales in `qk_scale`
// (query's dh values, then key's). Two passes over the keys (max, then exp-weighted sum), keys in
// ascending order.

struct AttentionParams {
    batch: u32,
    queries: u32,
    tokens: u32,
    heads: u32,
    head_dim: u32,
    q_batch_stride: u32,
    q_row_stride: u32,
    kv_row_stride: u32,
    k_offset: u32,
    v_offset: u32,
    qk_norm: u32,
    eps: f32,
}

@group(0) @binding(0) var<uniform> p: AttentionParams;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> kv: array<f32>;
@group(0) @binding(3) var<storage, read> qk_scale: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

const MAX_HEAD_DIM: u32 = 256u;

// q·k for the key at `k`: the plain dot product, or with the key LayerNorm-ed (the query in `qn`
// already is).
fn score(qn: ptr<function, array<f32, MAX_HEAD_DIM>>, k: u32) -> f32 {
    var s = 0.0;
    if (p.qk_norm == 0u) {
        for (var j = 0u; j < p.head_dim; j++) {
            s = fma((*qn)[j], kv[k + j], s);
        }
        return s;
    }
    var sum = 0.0;
    for (var j = 0u; j < p.head_dim; j++) {
        sum += kv[k + j];
    }
    let mean = sum / f32(p.head_dim);
    var ss = 0.0;
    for (var j = 0u; j < p.head_dim; j++) {
        let c = kv[k + j] - mean;
        ss = fma(c, c, ss);
    }
    let inv = inverseSqrt(ss / f32(p.head_dim) + p.eps);
    for (var j = 0u; j < p.head_dim; j++) {
        s = fma((*qn)[j], (kv[k + j] - mean) * inv * qk_scale[p.head_dim + j], s);
    }
    return s;
}

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let id = item_index(invocation);
    if (id >= p.batch * p.heads * p.queries) {
        return;
    }
    let i = id % p.queries;
    let h = (id / p.queries) % p.heads;
    let b = id / (p.queries * p.heads);
    let d = p.heads * p.head_dim;
    let q0 = b * p.q_batch_stride + i * p.q_row_stride + h * p.head_dim;
    let row0 = b * p.tokens;
    let scale = inverseSqrt(f32(p.head_dim));

    // The query, LayerNorm-ed when asked.
    var qn: array<f32, MAX_HEAD_DIM>;
    for (var j = 0u; j < p.head_dim; j++) {
        qn[j] = q[q0 + j];
    }
    if (p.qk_norm != 0u) {
        var sum = 0.0;
        for (var j = 0u; j < p.head_dim; j++) {
            sum += qn[j];
        }
        let mean = sum / f32(p.head_dim);
        var ss = 0.0;
        for (var j = 0u; j < p.head_dim; j++) {
            let c = qn[j] - mean;
            ss = fma(c, c, ss);
        }
        let inv = inverseSqrt(ss / f32(p.head_dim) + p.eps);
        for (var j = 0u; j < p.head_dim; j++) {
            qn[j] = (qn[j] - mean) * inv * qk_scale[j];
        }
    }

    var mx = -3.0e38;
    for (var t = 0u; t < p.tokens; t++) {
        mx = max(mx, score(&qn, (row0 + t) * p.kv_row_stride + p.k_offset + h * p.head_dim) * scale);
    }
    var acc: array<f32, MAX_HEAD_DIM>;
    var sum = 0.0;
    for (var t = 0u; t < p.tokens; t++) {
        let k = (row0 + t) * p.kv_row_stride + p.k_offset + h * p.head_dim;
        let w = exp(score(&qn, k) * scale - mx);
        sum += w;
        let v = (row0 + t) * p.kv_row_stride + p.v_offset + h * p.head_dim;
        for (var j = 0u; j < p.head_dim; j++) {
            acc[j] = fma(w, kv[v + j], acc[j]);
        }
    }
    let o = (b * p.queries + i) * d + h * p.head_dim;
    for (var j = 0u; j < p.head_dim; j++) {
        out[o + j] = acc[j] / sum;
    }
}
