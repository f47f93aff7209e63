// Register-blocked GEMM, 8 rows × 8 columns per invocation (two vec4 of B per k), for CPU adapters:
// there every storage load of a lane-varying address is a gather, so what counts is FMAs per loaded
// value (64 per 16 here, against 32 per 12 in the vec4 kernel's 8 × 4); spilled accumulators cost
// contiguous stack traffic, far cheaper. Layout as in gemm_vec4.wgsl with 8 columns per column lane.
// Sums in the canonical order of gemm_common.wgsl. Needs gemm_common.wgsl and gemm_b_*.wgsl in front.

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let lane = lane_block(invocation.wid, invocation.nwg, invocation.lidx, 8u, 8u);
    if (!lane.inside) {
        return;
    }
    let z = lane.z;
    let row0 = lane.row0;
    let col = lane.col;
    select_b(z);
    let last = p.m - 1u;
    // The second vec4 of columns past N (N is a multiple of 4) reads the first again and is not stored.
    let col_hi = select(col, col + 4u, col + 4u < p.n);
    let o0 = a_at(z, min(row0 + 0u, last), 0u);
    let o1 = a_at(z, min(row0 + 1u, last), 0u);
    let o2 = a_at(z, min(row0 + 2u, last), 0u);
    let o3 = a_at(z, min(row0 + 3u, last), 0u);
    let o4 = a_at(z, min(row0 + 4u, last), 0u);
    let o5 = a_at(z, min(row0 + 5u, last), 0u);
    let o6 = a_at(z, min(row0 + 6u, last), 0u);
    let o7 = a_at(z, min(row0 + 7u, last), 0u);
    var bi = b_at(z, 0u, col) / 4u;
    var bj = b_at(z, 0u, col_hi) / 4u;
    let b_step = p.b_rs / 4u;
    let norm = (switches() & 16u) != 0u;
    var ak = 0u;
    var t0 = vec4<f32>(0.0);
    var u0 = vec4<f32>(0.0);
    var t1 = vec4<f32>(0.0);
    var u1 = vec4<f32>(0.0);
    var t2 = vec4<f32>(0.0);
    var u2 = vec4<f32>(0.0);
    var t3 = vec4<f32>(0.0);
    var u3 = vec4<f32>(0.0);
    var t4 = vec4<f32>(0.0);
    var u4 = vec4<f32>(0.0);
    var t5 = vec4<f32>(0.0);
    var u5 = vec4<f32>(0.0);
    var t6 = vec4<f32>(0.0);
    var u6 = vec4<f32>(0.0);
    var t7 = vec4<f32>(0.0);
    var u7 = vec4<f32>(0.0);
    var sq_lo = vec4<f32>(0.0);
    var sq_hi = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.k; k0 += KC) {
        var c0 = vec4<f32>(0.0);
        var d0 = vec4<f32>(0.0);
        var c1 = vec4<f32>(0.0);
        var d1 = vec4<f32>(0.0);
        var c2 = vec4<f32>(0.0);
        var d2 = vec4<f32>(0.0);
        var c3 = vec4<f32>(0.0);
        var d3 = vec4<f32>(0.0);
        var c4 = vec4<f32>(0.0);
        var d4 = vec4<f32>(0.0);
        var c5 = vec4<f32>(0.0);
        var d5 = vec4<f32>(0.0);
        var c6 = vec4<f32>(0.0);
        var d6 = vec4<f32>(0.0);
        var c7 = vec4<f32>(0.0);
        var d7 = vec4<f32>(0.0);
        for (var k = k0; k < min(k0 + KC, p.k); k++) {
            let bv = load_b4(bi);
            let bw = load_b4(bj);
            let lo = vec4<f32>(a[o0 + ak], a[o1 + ak], a[o2 + ak], a[o3 + ak]);
            let hi = vec4<f32>(a[o4 + ak], a[o5 + ak], a[o6 + ak], a[o7 + ak]);
            c0 = fma(vec4<f32>(lo.x), bv, c0);
            d0 = fma(vec4<f32>(lo.x), bw, d0);
            c1 = fma(vec4<f32>(lo.y), bv, c1);
            d1 = fma(vec4<f32>(lo.y), bw, d1);
            c2 = fma(vec4<f32>(lo.z), bv, c2);
            d2 = fma(vec4<f32>(lo.z), bw, d2);
            c3 = fma(vec4<f32>(lo.w), bv, c3);
            d3 = fma(vec4<f32>(lo.w), bw, d3);
            c4 = fma(vec4<f32>(hi.x), bv, c4);
            d4 = fma(vec4<f32>(hi.x), bw, d4);
            c5 = fma(vec4<f32>(hi.y), bv, c5);
            d5 = fma(vec4<f32>(hi.y), bw, d5);
            c6 = fma(vec4<f32>(hi.z), bv, c6);
            d6 = fma(vec4<f32>(hi.z), bw, d6);
            c7 = fma(vec4<f32>(hi.w), bv, c7);
            d7 = fma(vec4<f32>(hi.w), bw, d7);
            if (norm) {
                sq_lo = fma(lo, lo, sq_lo);
                sq_hi = fma(hi, hi, sq_hi);
            }
            ak += p.a_cs;
            bi += b_step;
            bj += b_step;
        }
        t0 += c0;
        u0 += d0;
        t1 += c1;
        u1 += d1;
        t2 += c2;
        u2 += d2;
        t3 += c3;
        u3 += d3;
        t4 += c4;
        u4 += d4;
        t5 += c5;
        u5 += d5;
        t6 += c6;
        u6 += d6;
        t7 += c7;
        u7 += d7;
    }
    var r_lo = vec4<f32>(1.0);
    var r_hi = vec4<f32>(1.0);
    if (norm) {
        r_lo = inverseSqrt(sq_lo + vec4<f32>(1e-6));
        r_hi = inverseSqrt(sq_hi + vec4<f32>(1e-6));
    }
    let two = col + 4u < p.n;
    store_vec4(z, row0 + 0u, col, t0 * r_lo.x);
    if (two) {
        store_vec4(z, row0 + 0u, col + 4u, u0 * r_lo.x);
    }
    store_vec4(z, row0 + 1u, col, t1 * r_lo.y);
    if (two) {
        store_vec4(z, row0 + 1u, col + 4u, u1 * r_lo.y);
    }
    store_vec4(z, row0 + 2u, col, t2 * r_lo.z);
    if (two) {
        store_vec4(z, row0 + 2u, col + 4u, u2 * r_lo.z);
    }
    store_vec4(z, row0 + 3u, col, t3 * r_lo.w);
    if (two) {
        store_vec4(z, row0 + 3u, col + 4u, u3 * r_lo.w);
    }
    store_vec4(z, row0 + 4u, col, t4 * r_hi.x);
    if (two) {
        store_vec4(z, row0 + 4u, col + 4u, u4 * r_hi.x);
    }
    store_vec4(z, row0 + 5u, col, t5 * r_hi.y);
    if (two) {
        store_vec4(z, row0 + 5u, col + 4u, u5 * r_hi.y);
    }
    store_vec4(z, row0 + 6u, col, t6 * r_hi.z);
    if (two) {
        store_vec4(z, row0 + 6u, col + 4u, u6 * r_hi.z);
    }
    store_vec4(z, row0 + 7u, col, t7 * r_hi.w);
    if (two) {
        store_vec4(z, row0 + 7u, col + 4u, u7 * r_hi.w);
    }
}
