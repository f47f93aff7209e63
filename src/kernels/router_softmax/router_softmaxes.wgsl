// Both router softmaxes in one pass over an example's logits L [tokens, slots] (row-major, batched),
// `softmaxes`, shared by router_softmax.wgsl and router_logits.wgsl:
// D = softmax over the tokens of each slot (dispatch) and C = softmax over the slots of each token
// (combine). Each example is spread over `parts` workgroups of 256 invocations (many at small
// batch, so one example does not leave the device idle): part w takes one contiguous run of slots
// (`part_slots`) — their statistics (64 slots × 4 token lanes at a time, merged in workgroup memory
// in a fixed order) and their D — and one contiguous run of tokens (`part_tokens`), whose C rows are
// each reduced by a group of invocations with `group_max` / `group_sum` from the prelude
// (router_rows_subgroup.wgsl or router_rows_shared.wgsl), which also defines `main`. Every sum runs
// in an order fixed by the shape and the device, never by the batch or the parts, so an example's D
// and C do not depend on either.

const WG: u32 = 256u;
// Slots whose column statistics fit workgroup memory (8 KiB of WebGPU's guaranteed 16 KiB).
const MAX_SLOTS: u32 = 1024u;
// The lowest finite f32, written exactly (a rounded decimal is out of range for Tint).
const LOWEST: f32 = -0x1.fffffep+127f;

var<workgroup> col_max: array<f32, MAX_SLOTS>;
var<workgroup> col_sum: array<f32, MAX_SLOTS>;
var<workgroup> part: array<f32, WG>;

// How the rows are shared out: invocation `lane` of `lanes` in row group `row_group` of `groups`.
// Four scalars, not a struct: uniformity analysis (Tint's, in browsers) judges a parameter whole, and
// `groups`, which bounds the loop around the collective reductions, must stay provably uniform.
// The slots [x, y) whose D part `piece` computes: an equal run each, a multiple of 4 long (what
// router_logits.wgsl computes a vec4 at a time), empty for parts past the last slot.
fn part_slots(piece: u32) -> vec2<u32> {
    let per = ((p.slots + p.parts - 1u) / p.parts + 3u) / 4u * 4u;
    return vec2<u32>(min(piece * per, p.slots), min((piece + 1u) * per, p.slots));
}

// The tokens [x, y) whose C rows part `piece` computes.
fn part_tokens(piece: u32) -> vec2<u32> {
    let per = (p.tokens + p.parts - 1u) / p.parts;
    return vec2<u32>(min(piece * per, p.tokens), min((piece + 1u) * per, p.tokens));
}

// `lbase`: where this workgroup's copy of the logits starts (0 but in router_logits.wgsl, whose
// parts each keep their own).
fn softmaxes(wi: u32, t: u32, row_group: u32, lane: u32, groups: u32, lanes: u32, lbase: u32) {
    let e = wi / p.parts;
    let piece = wi % p.parts;
    if (e >= p.batch) {
        return;
    }
    let m = p.tokens;
    let s = p.slots;
    let base = e * m * s;

    // This part's slots: statistics, 64 slots at a time (token lane q sums tokens q, q + 4, q + 8,
    // ...), then their dispatch weights.
    let c = t % 64u;
    let q = t / 64u;
    let cols = part_slots(piece);
    for (var c0 = cols.x; c0 < cols.y; c0 += 64u) {
        let j = c0 + c;
        var mx = LOWEST;
        if (j < cols.y) {
            for (var i = q; i < m; i += 4u) {
                mx = max(mx, logits[lbase + base + i * s + j]);
            }
        }
        part[t] = mx;
        workgroupBarrier();
        if (q == 0u && j < cols.y) {
            col_max[j] = max(max(part[c], part[c + 64u]), max(part[c + 128u], part[c + 192u]));
        }
        workgroupBarrier();
        var sm = 0.0;
        if (j < cols.y) {
            let cm = col_max[j];
            for (var i = q; i < m; i += 4u) {
                sm += exp(logits[lbase + base + i * s + j] - cm);
            }
        }
        part[t] = sm;
        workgroupBarrier();
        if (q == 0u && j < cols.y) {
            col_sum[j] = ((part[c] + part[c + 64u]) + part[c + 128u]) + part[c + 192u];
        }
        workgroupBarrier();
        if (j < cols.y) {
            let cm = col_max[j];
            let cs = col_sum[j];
            for (var i = q; i < m; i += 4u) {
                let at = base + i * s + j;
                dispatch[at] = exp(logits[lbase + at] - cm) / cs;
            }
        }
    }

    // This part's tokens: each row group takes one, its lanes stride over the slots. Groups past the
    // last token still take part in the reductions (they are collective) but store nothing.
    let rows = part_tokens(piece);
    let lo = rows.x;
    let hi = rows.y;
    for (var r0 = lo; r0 < hi; r0 += groups) {
        let i = r0 + row_group;
        let row = base + min(i, hi - 1u) * s;
        var mx = LOWEST;
        for (var j = lane; j < s; j += lanes) {
            mx = max(mx, logits[lbase + row + j]);
        }
        mx = group_max(mx, t);
        var sm = 0.0;
        for (var j = lane; j < s; j += lanes) {
            sm += exp(logits[lbase + row + j] - mx);
        }
        sm = group_sum(sm, t);
        if (i < hi) {
            for (var j = lane; j < s; j += lanes) {
                combine[row + j] = exp(logits[lbase + row + j] - mx) / sm;
            }
        }
    }
}
