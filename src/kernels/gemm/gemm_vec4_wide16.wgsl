// Register-blocked GEMM, 16 rows × 16 columns per invocation (four vec4 of B per k), for CPU
// adapters on large GEMMs: there every storage load of a lane-varying address runs lane by lane,
// component by component, so what counts is FMAs per loaded value (256 per 32 here, 64 per 16 in
// gemm_vec4_wide.wgsl's 8 × 8), and accumulators spilled to the stack cost contiguous vector
// traffic, far cheaper. The block is written as four groups of four rows (`Rows4`) so that every
// index is a constant once inlined: a loop over a private array stays a loop on lavapipe, and its
// dynamic indices cost more than the loads saved. Layout as in gemm_vec4.wgsl, 16 columns per lane.
// Sums in the canonical order of gemm_common.wgsl. Needs gemm_common.wgsl and gemm_b_*.wgsl in front.

// One row's 16 columns.
struct Cols16 {
    v0: vec4<f32>,
    v1: vec4<f32>,
    v2: vec4<f32>,
    v3: vec4<f32>,
}

// Four rows × 16 columns.
struct Rows4 {
    r0: Cols16,
    r1: Cols16,
    r2: Cols16,
    r3: Cols16,
}

fn fma_cols(a: f32, b: Cols16, acc: Cols16) -> Cols16 {
    let s = vec4<f32>(a);
    return Cols16(fma(s, b.v0, acc.v0), fma(s, b.v1, acc.v1), fma(s, b.v2, acc.v2), fma(s, b.v3, acc.v3));
}

// acc + a_r · b for the four rows, a = their A values at this k.
fn fma_rows(a: vec4<f32>, b: Cols16, acc: Rows4) -> Rows4 {
    return Rows4(fma_cols(a.x, b, acc.r0), fma_cols(a.y, b, acc.r1), fma_cols(a.z, b, acc.r2), fma_cols(a.w, b, acc.r3));
}

fn add_cols(x: Cols16, y: Cols16) -> Cols16 {
    return Cols16(x.v0 + y.v0, x.v1 + y.v1, x.v2 + y.v2, x.v3 + y.v3);
}

fn add_rows(x: Rows4, y: Rows4) -> Rows4 {
    return Rows4(add_cols(x.r0, y.r0), add_cols(x.r1, y.r1), add_cols(x.r2, y.r2), add_cols(x.r3, y.r3));
}

// A's offsets of rows r…r+3 at k = 0 (rows past the last repeat it; they are not stored).
fn a_rows(z: u32, r: u32) -> vec4<u32> {
    let last = p.m - 1u;
    return vec4<u32>(a_at(z, min(r, last), 0u), a_at(z, min(r + 1u, last), 0u), a_at(z, min(r + 2u, last), 0u), a_at(z, min(r + 3u, last), 0u));
}

fn load_a4(o: vec4<u32>, ak: u32) -> vec4<f32> {
    return vec4<f32>(a[o.x + ak], a[o.y + ak], a[o.z + ak], a[o.w + ak]);
}

// The four vec4 of columns col…col+15 that lie inside the output (N is a multiple of 4), the row's
// offset found once.
fn store_cols(z: u32, r: u32, col: u32, v: Cols16, scale: f32) {
    if (r >= p.m) {
        return;
    }
    let at = c_row(z, r) + col;
    store_vec4_at(z, at, col, v.v0 * scale);
    if (col + 4u < p.n) {
        store_vec4_at(z, at + 4u, col + 4u, v.v1 * scale);
    }
    if (col + 8u < p.n) {
        store_vec4_at(z, at + 8u, col + 8u, v.v2 * scale);
    }
    if (col + 12u < p.n) {
        store_vec4_at(z, at + 12u, col + 12u, v.v3 * scale);
    }
}

fn store_rows(z: u32, r: u32, col: u32, v: Rows4, scale: vec4<f32>) {
    store_cols(z, r, col, v.r0, scale.x);
    store_cols(z, r + 1u, col, v.r1, scale.y);
    store_cols(z, r + 2u, col, v.r2, scale.z);
    store_cols(z, r + 3u, col, v.r3, scale.w);
}

fn zero_rows() -> Rows4 {
    let c = Cols16(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    return Rows4(c, c, c, c);
}

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let lane = lane_block(invocation.wid, invocation.nwg, invocation.lidx, 16u, 16u);
    if (!lane.inside) {
        return;
    }
    let z = lane.z;
    let row0 = lane.row0;
    let col = lane.col;
    select_b(z);
    let oa0 = a_rows(z, row0);
    let oa1 = a_rows(z, row0 + 4u);
    let oa2 = a_rows(z, row0 + 8u);
    let oa3 = a_rows(z, row0 + 12u);
    // Columns past N read the last vec4 of columns again and are not stored.
    var ob = vec4<u32>(
        b_at(z, 0u, col),
        b_at(z, 0u, min(col + 4u, p.n - 4u)),
        b_at(z, 0u, min(col + 8u, p.n - 4u)),
        b_at(z, 0u, min(col + 12u, p.n - 4u))
    ) / 4u;
    let b_step = vec4<u32>(p.b_rs / 4u);
    let norm = (switches() & 16u) != 0u;
    var ak = 0u;
    var t0 = zero_rows();
    var t1 = zero_rows();
    var t2 = zero_rows();
    var t3 = zero_rows();
    var sq0 = vec4<f32>(0.0);
    var sq1 = vec4<f32>(0.0);
    var sq2 = vec4<f32>(0.0);
    var sq3 = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.k; k0 += KC) {
        var c0 = zero_rows();
        var c1 = zero_rows();
        var c2 = zero_rows();
        var c3 = zero_rows();
        for (var k = k0; k < min(k0 + KC, p.k); k++) {
            let bv = Cols16(load_b4(ob.x), load_b4(ob.y), load_b4(ob.z), load_b4(ob.w));
            let a0 = load_a4(oa0, ak);
            let a1 = load_a4(oa1, ak);
            let a2 = load_a4(oa2, ak);
            let a3 = load_a4(oa3, ak);
            c0 = fma_rows(a0, bv, c0);
            c1 = fma_rows(a1, bv, c1);
            c2 = fma_rows(a2, bv, c2);
            c3 = fma_rows(a3, bv, c3);
            if (norm) {
                sq0 = fma(a0, a0, sq0);
                sq1 = fma(a1, a1, sq1);
                sq2 = fma(a2, a2, sq2);
                sq3 = fma(a3, a3, sq3);
            }
            ak += p.a_cs;
            ob += b_step;
        }
        t0 = add_rows(t0, c0);
        t1 = add_rows(t1, c1);
        t2 = add_rows(t2, c2);
        t3 = add_rows(t3, c3);
    }
    var s0 = vec4<f32>(1.0);
    var s1 = vec4<f32>(1.0);
    var s2 = vec4<f32>(1.0);
    var s3 = vec4<f32>(1.0);
    if (norm) {
        s0 = inverseSqrt(sq0 + vec4<f32>(1e-6));
        s1 = inverseSqrt(sq1 + vec4<f32>(1e-6));
        s2 = inverseSqrt(sq2 + vec4<f32>(1e-6));
        s3 = inverseSqrt(sq3 + vec4<f32>(1e-6));
    }
    store_rows(z, row0, col, t0, s0);
    store_rows(z, row0 + 4u, col, t1, s1);
    store_rows(z, row0 + 8u, col, t2, s2);
    store_rows(z, row0 + 12u, col, t3, s3);
}
