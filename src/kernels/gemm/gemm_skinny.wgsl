// GEMM for few rows (the expert MLPs at small batch): a workgroup computes 4 rows × 64 columns, each
// invocation one column of the 4 rows, streaming B once with coalesced reads and no workgroup memory.
// Rows past m are clamped for reading and never stored. Needs gemm_common.wgsl in front.

const ROWS: u32 = 4u;
const COLS: u32 = WG_SIZE;

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let at = gemm_tile(invocation.wid, invocation.nwg);
    if (at.x >= p.batch) {
        return;
    }
    let z = at.x;
    let t = at.y;
    let row0 = (t / p.tiles_n) * ROWS;
    let gc = (t % p.tiles_n) * COLS + invocation.lidx;
    let cc = min(gc, p.n - 1u);
    // Offsets of k = 0, advanced by the column stride: no index division inside the loop.
    let a0 = a_at(z, min(row0, p.m - 1u), 0u);
    let a1 = a_at(z, min(row0 + 1u, p.m - 1u), 0u);
    let a2 = a_at(z, min(row0 + 2u, p.m - 1u), 0u);
    let a3 = a_at(z, min(row0 + 3u, p.m - 1u), 0u);
    var bi = b_at(z, 0u, cc);
    var ak = 0u;
    var total = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.k; k0 += KC) {
        var acc = vec4<f32>(0.0);
        for (var k = k0; k < min(k0 + KC, p.k); k++) {
            let av = vec4<f32>(a[a0 + ak], a[a1 + ak], a[a2 + ak], a[a3 + ak]);
            acc = fma(av, vec4<f32>(b[bi]), acc);
            ak += p.a_cs;
            bi += p.b_rs;
        }
        total += acc;
    }
    for (var i = 0u; i < ROWS; i++) {
        store(z, row0 + i, gc, total[i]);
    }
}
