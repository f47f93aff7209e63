// Both router softmaxes in one pass over an example's logits L [tokens, slots] (row-major, batched),
// `softmaxes`, shared by router_softmax.wgsl and router_logits.wgsl:
// D = softmax over the tokens of each slot (dispatch) and C = softmax over the slots of each token
// (combine). Each example is spread over `parts` workgroups of 256 invocations (many at small
// batch, so one example does not leave the device idle): part w takes the 64-slot column blocks
// w, w + parts, … — their statistics (64 slots × 4 token lanes, merged in workgroup memory in a
// fixed order) and their D — and one contiguous run of tokens, whose C rows are each reduced by a
// group of invocations with `group_max` / `group_sum` from the prelude (router_rows_subgroup.wgsl or
// router_rows_shared.wgsl), which also defines `main`. Every sum runs in an order fixed by the shape
// and the device, never by the batch or the parts, so an example's D and C do not depend on either.

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
fn softmaxes(wi: u32, t: u32, row_group: u32, lane: u32, groups: u32, lanes: u32) {
    let e = wi / p.parts;
    let piece = wi % p.parts;
    if (e >= p.batch) {
        return;
    }
    let m = p.tokens;
    let s = p.slots;
    let base = e * m * s;

    // This part's column blocks: statistics, 64 slots at a time (token lane q sums tokens q, q + 4,
    // q + 8, ...), then their dispatch weights.
    let c = t % 64u;
    let q = t / 64u;
    for (var c0 = piece * 64u; c0 < s; c0 += p.parts * 64u) {
        let j = c0 + c;
        var mx = LOWEST;
        if (j < s) {
            for (var i = q; i < m; i += 4u) {
                mx = max(mx, logits[base + i * s + j]);
            }
        }
        part[t] = mx;
        workgroupBarrier();
        if (q == 0u && j < s) {
            col_max[j] = max(max(part[c], part[c + 64u]), max(part[c + 128u], part[c + 192u]));
        }
        workgroupBarrier();
        var sm = 0.0;
        if (j < s) {
            let cm = col_max[j];
            for (var i = q; i < m; i += 4u) {
                sm += exp(logits[base + i * s + j] - cm);
            }
        }
        part[t] = sm;
        workgroupBarrier();
        if (q == 0u && j < s) {
            col_sum[j] = ((part[c] + part[c + 64u]) + part[c + 128u]) + part[c + 192u];
        }
        workgroupBarrier();
        if (j < s) {
            let cm = col_max[j];
            let cs = col_sum[j];
            for (var i = q; i < m; i += 4u) {
                let at = base + i * s + j;
                dispatch[at] = exp(logits[at] - cm) / cs;
            }
        }
    }

    // This part's tokens: each row group takes one, its lanes stride over the slots. Groups past the
    // last token still take part in the reductions (they are collective) but store nothing.
    let per_part = (m + p.parts - 1u) / p.parts;
    let lo = piece * per_part;
    let hi = min(lo + per_part, m);
    for (var r0 = lo; r0 < hi; r0 += groups) {
        let i = r0 + row_group;
        let row = base + min(i, m - 1u) * s;
        var mx = LOWEST;
        for (var j = lane; j < s; j += lanes) {
            mx = max(mx, logits[row + j]);
        }
        mx = group_max(mx, t);
        var sm = 0.0;
        for (var j = lane; j < s; j += lanes) {
            sm += exp(logits[row + j] - mx);
        }
        sm = group_sum(sm, t);
        if (i < hi) {
            for (var j = lane; j < s; j += lanes) {
                combine[row + j] = exp(logits[row + j] - mx) / sm;
            }
        }
    }
}
