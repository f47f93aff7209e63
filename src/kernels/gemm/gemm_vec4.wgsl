// Register-blocked GEMM: each invocation computes 8 rows × 4 columns, reading B as vec4 and each A
// value once per 4 outputs; no workgroup memory. The WG_SIZE invocations of a workgroup are laid
// out as (WG_SIZE / G) row groups × G column groups, G = 2^((flags >> 8) & 15) chosen by the host to
// fit narrow outputs. Needs N, B's row stride, batch stride and offset to be multiples of 4 (the host checks).
// Sums in the canonical order of gemm_common.wgsl, as the other GEMMs do. With flag bit 4 it also normalises the rows of A
// (the Soft MoE router's X̂ = X / ‖X‖ fused into the logits GEMM). Needs gemm_common.wgsl and one of gemm_b_f32.wgsl /
// gemm_b_f16.wgsl (which define `load_b4`) in front.

const ROWS: u32 = 8u;

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let lane = lane_block(invocation.wid, invocation.nwg, invocation.lidx, ROWS, 4u);
    if (!lane.inside) {
        return;
    }
    let z = lane.z;
    let row0 = lane.row0;
    let col = lane.col;
    select_b(z);
    let last = p.m - 1u;
    let o0 = a_at(z, min(row0 + 0u, last), 0u);
    let o1 = a_at(z, min(row0 + 1u, last), 0u);
    let o2 = a_at(z, min(row0 + 2u, last), 0u);
    let o3 = a_at(z, min(row0 + 3u, last), 0u);
    let o4 = a_at(z, min(row0 + 4u, last), 0u);
    let o5 = a_at(z, min(row0 + 5u, last), 0u);
    let o6 = a_at(z, min(row0 + 6u, last), 0u);
    let o7 = a_at(z, min(row0 + 7u, last), 0u);
    var bi = b_at(z, 0u, col) / 4u;
    let b_step = p.b_rs / 4u;
    // Flag bit 4: also sum the squares of the A rows (the router's token norms), in k order.
    let norm = (switches() & 16u) != 0u;
    // Flag bit 12 turns the single-row path off (the benchmark's baseline).
    // One or two rows left (batch 1 with p ≤ 2 slots per expert): each alone, without the clamped
    // duplicates, which would be most of the work (a CPU adapter is bound by it).
    if (row0 + 2u >= p.m && (p.flags & 4096u) == 0u) {
        single_row(z, row0, col, o0, bi, b_step, norm);
        if (row0 < last) {
            single_row(z, last, col, a_at(z, last, 0u), bi, b_step, norm);
        }
        return;
    }
    var ak = 0u;
    // t*: the chunks summed so far (canonical order, gemm_common.wgsl); c*: the current chunk.
    var t0 = vec4<f32>(0.0);
    var t1 = vec4<f32>(0.0);
    var t2 = vec4<f32>(0.0);
    var t3 = vec4<f32>(0.0);
    var t4 = vec4<f32>(0.0);
    var t5 = vec4<f32>(0.0);
    var t6 = vec4<f32>(0.0);
    var t7 = vec4<f32>(0.0);
    var sq_lo = vec4<f32>(0.0);
    var sq_hi = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.k; k0 += KC) {
        var c0 = vec4<f32>(0.0);
        var c1 = vec4<f32>(0.0);
        var c2 = vec4<f32>(0.0);
        var c3 = vec4<f32>(0.0);
        var c4 = vec4<f32>(0.0);
        var c5 = vec4<f32>(0.0);
        var c6 = vec4<f32>(0.0);
        var c7 = vec4<f32>(0.0);
        for (var k = k0; k < min(k0 + KC, p.k); k++) {
            let bv = load_b4(bi);
            let lo = vec4<f32>(a[o0 + ak], a[o1 + ak], a[o2 + ak], a[o3 + ak]);
            let hi = vec4<f32>(a[o4 + ak], a[o5 + ak], a[o6 + ak], a[o7 + ak]);
            c0 = fma(vec4<f32>(lo.x), bv, c0);
            c1 = fma(vec4<f32>(lo.y), bv, c1);
            c2 = fma(vec4<f32>(lo.z), bv, c2);
            c3 = fma(vec4<f32>(lo.w), bv, c3);
            c4 = fma(vec4<f32>(hi.x), bv, c4);
            c5 = fma(vec4<f32>(hi.y), bv, c5);
            c6 = fma(vec4<f32>(hi.z), bv, c6);
            c7 = fma(vec4<f32>(hi.w), bv, c7);
            if (norm) {
                sq_lo = fma(lo, lo, sq_lo);
                sq_hi = fma(hi, hi, sq_hi);
            }
            ak += p.a_cs;
            bi += b_step;
        }
        t0 += c0;
        t1 += c1;
        t2 += c2;
        t3 += c3;
        t4 += c4;
        t5 += c5;
        t6 += c6;
        t7 += c7;
    }
    // Rows scaled by 1/sqrt(‖row‖² + 1e-6) (vmoe's eps inside the sqrt); 1 without the flag.
    var r_lo = vec4<f32>(1.0);
    var r_hi = vec4<f32>(1.0);
    if (norm) {
        r_lo = inverseSqrt(sq_lo + vec4<f32>(1e-6));
        r_hi = inverseSqrt(sq_hi + vec4<f32>(1e-6));
    }
    store_vec4(z, row0 + 0u, col, t0 * r_lo.x);
    store_vec4(z, row0 + 1u, col, t1 * r_lo.y);
    store_vec4(z, row0 + 2u, col, t2 * r_lo.z);
    store_vec4(z, row0 + 3u, col, t3 * r_lo.w);
    store_vec4(z, row0 + 4u, col, t4 * r_hi.x);
    store_vec4(z, row0 + 5u, col, t5 * r_hi.y);
    store_vec4(z, row0 + 6u, col, t6 * r_hi.z);
    store_vec4(z, row0 + 7u, col, t7 * r_hi.w);
}

// One row alone (M = 1 is batch 1 with one slot per expert: the inference case, bound by reading
// B once): the same fma sequence per output as the 8-row loop, without its clamped duplicates,
// with four B rows loaded before their FMAs so several loads are in flight.
fn single_row(z: u32, row: u32, col: u32, o0: u32, b0: u32, b_step: u32, norm: bool) {
    var bi = b0;
    var ak = o0;
    var total = vec4<f32>(0.0);
    var sq = 0.0;
    for (var k0 = 0u; k0 < p.k; k0 += KC) {
        let end = min(k0 + KC, p.k);
        var acc = vec4<f32>(0.0);
        var k = k0;
        for (; k + 4u <= end; k += 4u) {
            let w0 = load_b4(bi);
            let w1 = load_b4(bi + b_step);
            let w2 = load_b4(bi + 2u * b_step);
            let w3 = load_b4(bi + 3u * b_step);
            let x0 = a[ak];
            let x1 = a[ak + p.a_cs];
            let x2 = a[ak + 2u * p.a_cs];
            let x3 = a[ak + 3u * p.a_cs];
            acc = fma(vec4<f32>(x0), w0, acc);
            acc = fma(vec4<f32>(x1), w1, acc);
            acc = fma(vec4<f32>(x2), w2, acc);
            acc = fma(vec4<f32>(x3), w3, acc);
            if (norm) {
                sq = fma(x0, x0, sq);
                sq = fma(x1, x1, sq);
                sq = fma(x2, x2, sq);
                sq = fma(x3, x3, sq);
            }
            ak += 4u * p.a_cs;
            bi += 4u * b_step;
        }
        for (; k < end; k++) {
            let x = a[ak];
            acc = fma(vec4<f32>(x), load_b4(bi), acc);
            if (norm) {
                sq = fma(x, x, sq);
            }
            ak += p.a_cs;
            bi += b_step;
        }
        total += acc;
    }
    var r = 1.0;
    if (norm) {
        r = inverseSqrt(sq + 1e-6);
    }
    store_vec4(z, row, col, total * r);
}
