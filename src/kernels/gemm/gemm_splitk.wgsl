// Split-K GEMM for few rows: the expert Dense layers at small batch (M = batch·p rows per expert;
// M = 1 is batch 1 with one slot per expert, the paper's best setting), bound by reading the
// weights B once. A workgroup of 256 invocations = KG k-groups × CL column lanes owns ROWS rows and
// 4·CL columns; each lane reads B as vec4 (16 bytes), neighbouring lanes neighbouring columns, so a
// group's reads of one B row are one contiguous run, and four B rows are loaded before their FMAs.
// The k-groups take successive KC-chunks of K, KG chunks per round; after each round group 0 adds
// the round's chunk sums to its totals in chunk order: the canonical order of gemm_common.wgsl, so
// the bits equal every other GEMM kernel's. CL = 2^((flags >> 8) & 15) ≤ 32, chosen by the host to
// fit narrow outputs; ROWS (1, 2 or 4) is a constant the host puts in front of this file; row tiles
// are the fastest-varying workgroup index, so the tiles sharing a block of B run together (on a GPU
// the later ones read it from cache). Needs gemm_common.wgsl and gemm_b_f32.wgsl / gemm_b_f16.wgsl.

const SPLIT_WG: u32 = 256u;

// One round's chunk sums, [KG][ROWS][CL] (KG·CL = SPLIT_WG).
var<workgroup> part: array<vec4<f32>, SPLIT_WG * ROWS>;

@compute @workgroup_size(SPLIT_WG)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lidx: u32,
) {
    let at = gemm_tile(wid, nwg);
    if (at.x >= p.batch) {
        return;
    }
    let z = at.x;
    let t = at.y;
    select_b(z);
    let cl_log2 = (p.flags >> 8u) & 15u;
    let cl = 1u << cl_log2;
    let kg = SPLIT_WG >> cl_log2;
    let lane = lidx & (cl - 1u);
    let g = lidx >> cl_log2;
    let row0 = (t % p.tiles_m) * ROWS;
    let col = ((t / p.tiles_m) * cl + lane) * 4u;
    // Lanes past the last column read the last vec4 (and store nothing): no branch around barriers.
    let col_read = min(col, p.n - 4u);
    var o: array<u32, ROWS>;
    for (var r = 0u; r < ROWS; r++) {
        o[r] = a_at(z, min(row0 + r, p.m - 1u), 0u);
    }
    let b0 = b_at(z, 0u, col_read) / 4u;
    let b_step = p.b_rs / 4u;
    let chunks = (p.k + KC - 1u) / KC;
    var total: array<vec4<f32>, ROWS>;
    for (var round = 0u; round < chunks; round += kg) {
        let chunk = round + g;
        var acc: array<vec4<f32>, ROWS>;
        if (chunk < chunks) {
            let k0 = chunk * KC;
            let end = min(k0 + KC, p.k);
            var bi = b0 + k0 * b_step;
            var ak = k0 * p.a_cs;
            var k = k0;
            for (; k + 4u <= end; k += 4u) {
                let w0 = load_b4(bi);
                let w1 = load_b4(bi + b_step);
                let w2 = load_b4(bi + 2u * b_step);
                let w3 = load_b4(bi + 3u * b_step);
                for (var r = 0u; r < ROWS; r++) {
                    let x = o[r] + ak;
                    acc[r] = fma(vec4<f32>(a[x]), w0, acc[r]);
                    acc[r] = fma(vec4<f32>(a[x + p.a_cs]), w1, acc[r]);
                    acc[r] = fma(vec4<f32>(a[x + 2u * p.a_cs]), w2, acc[r]);
                    acc[r] = fma(vec4<f32>(a[x + 3u * p.a_cs]), w3, acc[r]);
                }
                ak += 4u * p.a_cs;
                bi += 4u * b_step;
            }
            for (; k < end; k++) {
                let w = load_b4(bi);
                for (var r = 0u; r < ROWS; r++) {
                    acc[r] = fma(vec4<f32>(a[o[r] + ak]), w, acc[r]);
                }
                ak += p.a_cs;
                bi += b_step;
            }
        }
        for (var r = 0u; r < ROWS; r++) {
            part[(g * ROWS + r) * cl + lane] = acc[r];
        }
        workgroupBarrier();
        if (g == 0u) {
            for (var gg = 0u; gg < kg && round + gg < chunks; gg++) {
                for (var r = 0u; r < ROWS; r++) {
                    total[r] += part[(gg * ROWS + r) * cl + lane];
                }
            }
        }
        workgroupBarrier();
    }
    if (g == 0u && col < p.n) {
        for (var r = 0u; r < ROWS; r++) {
            store_vec4(z, row0 + r, col, total[r]);
        }
    }
}
