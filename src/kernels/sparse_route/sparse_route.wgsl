// Sparse routing (src/routing.rs rules): the slot each (token, expert) pair takes in the expert's
// buffer for its group, or NONE. One invocation per pair; k = 0 means Experts Choice.

struct SparseRouteParams {
    rows: u32,
    n: u32,
    group_tokens: u32,
    k: u32,
    cap_full: u32,
    cap_last: u32,
}

@group(0) @binding(0) var<uniform> p: SparseRouteParams;
@group(0) @binding(1) var<storage, read> gates: array<f32>;
@group(0) @binding(2) var<storage, read_write> slot_of: array<u32>;

const NONE: u32 = 0xffffffffu;

// A larger gate wins; on equal gates the lower index.
fn beats(a: f32, i: u32, b: f32, j: u32) -> bool {
    return a > b || (a == b && i < j);
}

// Rank of expert e among token t's gates (0 = its first choice).
fn choice_rank(t: u32, e: u32) -> u32 {
    let base = t * p.n;
    let v = gates[base + e];
    var r = 0u;
    for (var f = 0u; f < p.n; f++) {
        if (beats(gates[base + f], f, v, e)) {
            r++;
        }
    }
    return r;
}

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let idx = item_index(invocation);
    if (idx >= p.rows * p.n) {
        return;
    }
    let t = idx / p.n;
    let e = idx % p.n;
    let start = (t / p.group_tokens) * p.group_tokens;
    let end = min(start + p.group_tokens, p.rows);
    let cap = select(p.cap_full, p.cap_last, end == p.rows);
    var slot = NONE;
    if (p.k == 0u) {
        // Experts Choice: the token's rank among the group's gates for expert e.
        let v = gates[idx];
        var rank = 0u;
        for (var u = start; u < end; u++) {
            if (beats(gates[u * p.n + e], u, v, t)) {
                rank++;
            }
        }
        if (rank < cap) {
            slot = rank;
        }
    } else {
        // Tokens Choice: choices of earlier rounds, then of earlier tokens, fill the buffer first.
        let r = choice_rank(t, e);
        if (r < p.k) {
            var pos = 0u;
            for (var u = start; u < end; u++) {
                let ru = choice_rank(u, e);
                if (ru < r || (ru == r && u < t)) {
                    pos++;
                }
            }
            if (pos < cap) {
                slot = pos;
            }
        }
    }
    slot_of[idx] = slot;
}
