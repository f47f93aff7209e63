// The whole router in one dispatch, for small layers (slots a multiple of 4): one workgroup per example computes its logits
// L = alpha · X̂ Φ̂ (X̂ = X / ‖X‖ when `normalize`) into the logits buffer, then both softmaxes from them
// (router_softmaxes.wgsl, parts = 1). Each logit is the logits GEMM's to the bit: summed in the
// canonical order of gemm_common.wgsl (chunks of KC k, fma'd k-ascending), the row's squares fma'd in
// k order, then alpha · (sum · 1/sqrt(‖x‖² + 1e-6)) as the GEMM's fused normalisation finishes it.

const KC: u32 = 32u;

struct RouterLogitsParams {
    batch: u32,
    tokens: u32,
    slots: u32,
    row_lanes: u32, // invocations per row in router_rows_shared.wgsl (unused with subgroups)
    parts: u32,     // workgroups per example: 1 (each computes all of its example's logits)
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

fn route(wi: u32, t: u32, row_group: u32, lane: u32, groups: u32, lanes: u32) {
    let e = wi;
    if (e >= p.batch) {
        return;
    }
    let m = p.tokens;
    let s = p.slots;
    let d = p.d;
    // Four slots of one token per invocation and pass: a vec4 of Φ̂ per k (slots a multiple of 4).
    let s4 = s / 4u;
    for (var o = t; o < m * s4; o += WG) {
        let i = o / s4;
        let j4 = o % s4;
        var xi = (e * m + i) * d;
        var mi = j4;
        var total = vec4<f32>(0.0);
        var sq = 0.0;
        for (var k0 = 0u; k0 < d; k0 += KC) {
            var acc = vec4<f32>(0.0);
            for (var k = k0; k < min(k0 + KC, d); k++) {
                let xv = x[xi];
                acc = fma(vec4<f32>(xv), mu4[mi], acc);
                sq = fma(xv, xv, sq);
                xi += 1u;
                mi += s4;
            }
            total += acc;
        }
        var r = 1.0;
        if (p.normalize != 0u) {
            r = inverseSqrt(sq + 1e-6);
        }
        let v = p.alpha * (total * r);
        let at = e * m * s + i * s + j4 * 4u;
        logits[at] = v.x;
        logits[at + 1u] = v.y;
        logits[at + 2u] = v.z;
        logits[at + 3u] = v.w;
    }
    // The logits of this example were written by this workgroup alone; make them visible to it.
    storageBarrier();
    softmaxes(wi, t, row_group, lane, groups, lanes);
}
