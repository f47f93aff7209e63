// The whole router in one dispatch, for small layers (slots a multiple of 4): L = alpha · X̂ Φ̂
// (X̂ = X / ‖X‖ when `normalize`), then both softmaxes from it (router_softmaxes.wgsl). Each example
// is spread over `parts` workgroups, and each part computes the logits its softmaxes read — all
// tokens of its slots, all slots of its tokens — into a copy of its own (`parts` copies of L in
// the logits buffer), so no workgroup reads what another writes. Each logit is the logits GEMM's to
// the bit: summed in the canonical order of gemm_common.wgsl (chunks of KC k, fma'd k-ascending),
// the row's squares fma'd in k order, then alpha · (sum · 1/sqrt(‖x‖² + 1e-6)) as the GEMM's fused
// normalisation finishes it.

const KC: u32 = 32u;

struct RouterLogitsParams {
    batch: u32,
    tokens: u32,
    slots: u32,
    row_lanes: u32, // invocations per row in router_rows_shared.wgsl (unused with subgroups)
    parts: u32,     // workgroups per example, each with its own copy of the logits
    d: u32,
    normalize: u32,
    alpha: f32,
}

@group(0) @binding(0) var<uniform> p: RouterLogitsParams;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> dispatch: array<f32>;
@group(0) @binding(3) var<storage, read_write> combine: array<f32>;
@group(0) @binding(4) var<storage, read> x: array<f32>;
@group(0) @binding(5) var<storage, read> mu4: array<vec4<f32>>;

// Four tokens' vec4 of logits, a struct rather than an array: lavapipe keeps private arrays in memory.
struct Block4 {
    t0: vec4<f32>,
    t1: vec4<f32>,
    t2: vec4<f32>,
    t3: vec4<f32>,
}

fn store_logits(at: u32, v: vec4<f32>) {
    logits[at] = v.x;
    logits[at + 1u] = v.y;
    logits[at + 2u] = v.z;
    logits[at + 3u] = v.w;
}

// The logits of tokens i … i + 3 of example e (those below `hi`; the missing ones re-read token
// hi − 1 and store nothing) at slots 4·j4 … 4·j4 + 3, into the copy at `lbase`: each vec4 of Φ̂
// loaded serves four tokens and each x value four slots, where a CPU adapter pays per loaded value.
fn logits4(e: u32, i: u32, hi: u32, j4: u32, lbase: u32) {
    let d = p.d;
    let s = p.slots;
    let s4 = s / 4u;
    let row = e * p.tokens + i;
    let last = e * p.tokens + hi - 1u;
    var x0 = row * d;
    var x1 = min(row + 1u, last) * d;
    var x2 = min(row + 2u, last) * d;
    var x3 = min(row + 3u, last) * d;
    var mi = j4;
    var total = Block4(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    var sq = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < d; k0 += KC) {
        var acc = Block4(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
        for (var k = k0; k < min(k0 + KC, d); k++) {
            let w = mu4[mi];
            let xv = vec4<f32>(x[x0], x[x1], x[x2], x[x3]);
            acc.t0 = fma(vec4<f32>(xv.x), w, acc.t0);
            acc.t1 = fma(vec4<f32>(xv.y), w, acc.t1);
            acc.t2 = fma(vec4<f32>(xv.z), w, acc.t2);
            acc.t3 = fma(vec4<f32>(xv.w), w, acc.t3);
            sq = fma(xv, xv, sq);
            x0 += 1u;
            x1 += 1u;
            x2 += 1u;
            x3 += 1u;
            mi += s4;
        }
        total = Block4(total.t0 + acc.t0, total.t1 + acc.t1, total.t2 + acc.t2, total.t3 + acc.t3);
    }
    var r = vec4<f32>(1.0);
    if (p.normalize != 0u) {
        r = inverseSqrt(sq + vec4<f32>(1e-6));
    }
    let at = lbase + row * s + j4 * 4u;
    store_logits(at, p.alpha * (total.t0 * r.x));
    if (i + 1u < hi) {
        store_logits(at + s, p.alpha * (total.t1 * r.y));
    }
    if (i + 2u < hi) {
        store_logits(at + 2u * s, p.alpha * (total.t2 * r.z));
    }
    if (i + 3u < hi) {
        store_logits(at + 3u * s, p.alpha * (total.t3 * r.w));
    }
}

fn route(wi: u32, t: u32, row_group: u32, lane: u32, groups: u32, lanes: u32) {
    let e = wi / p.parts;
    let piece = wi % p.parts;
    if (e >= p.batch) {
        return;
    }
    let m = p.tokens;
    let s4 = p.slots / 4u;
    let lbase = piece * p.batch * m * p.slots;
    // All tokens of this part's slots, then this part's tokens of the other slots.
    let cols = part_slots(piece) / 4u;
    let own = cols.y - cols.x;
    for (var o = t; o < ((m + 3u) / 4u) * own; o += WG) {
        logits4(e, (o / own) * 4u, m, cols.x + o % own, lbase);
    }
    let rows = part_tokens(piece);
    let other = s4 - own;
    for (var o = t; o < ((rows.y - rows.x + 3u) / 4u) * other; o += WG) {
        let j = o % other;
        logits4(e, rows.x + (o / other) * 4u, rows.y, select(j + own, j, j < cols.x), lbase);
    }
    // The logits of this example were written by this workgroup alone; make them visible to it.
    storageBarrier();
    softmaxes(wi, t, row_group, lane, groups, lanes, lbase);
}
