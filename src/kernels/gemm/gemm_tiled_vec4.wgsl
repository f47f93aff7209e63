// Workgroup-memory tiled GEMM with vec4 B, for many rows on GPUs (M ≥ 64: the logits, Dᵀ X, C Ỹ
// and the expert layers at large batch): a 64×64 output tile per workgroup of 16×16 invocations,
// 4 rows × one vec4 of columns each. K is staged through workgroup memory TK = KC = 32 at a time,
// so each K step is exactly one chunk of the canonical order (gemm_common.wgsl): summed into `acc`
// from 0, then added to `total`. B is loaded 16 bytes per invocation, A's values so that
// neighbouring invocations read neighbouring k; inner loop: two vec4 reads of workgroup memory per
// 16 FMAs. With flag bit 4 it also normalises the rows of A (the router's X̂), summing squares in k
// order as the vec4 kernel does, so the two agree bit for bit. Needs gemm_common.wgsl and one of
// gemm_b_f32.wgsl / gemm_b_f16.wgsl in front.

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = KC;

var<workgroup> a_tile: array<vec4<f32>, 512>; // [TK][TM / 4]: rows 4r…4r+3 of one depth
var<workgroup> b_tile: array<vec4<f32>, 512>; // [TK][TN / 4]

@compute @workgroup_size(16, 16, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) lidx: u32,
) {
    let at = gemm_tile(wid, nwg);
    if (at.x >= p.batch) {
        return;
    }
    let z = at.x;
    let t = at.y;
    select_b(z);
    let row0 = (t / p.tiles_n) * TM;
    let col0 = (t % p.tiles_n) * TN;

    // The 8 A slots (row e / TK, depth e % TK) and 2 B slots (depth e / 16, vec4 column e % 16)
    // this invocation loads in every K step, found once.
    var a_off: array<u32, 8>;
    var a_ok: array<bool, 8>;
    for (var q = 0u; q < 8u; q++) {
        let e = lidx + q * 256u;
        let gr = row0 + e / TK;
        a_ok[q] = gr < p.m;
        a_off[q] = a_at(z, min(gr, p.m - 1u), e % TK);
    }
    var b_off: array<u32, 2>;
    var b_ok: array<bool, 2>;
    for (var q = 0u; q < 2u; q++) {
        let e = lidx + q * 256u;
        let gc = col0 + (e % 16u) * 4u;
        b_ok[q] = gc < p.n;
        b_off[q] = b_at(z, e / 16u, min(gc, p.n - 4u)) / 4u;
    }
    let norm = (switches() & 16u) != 0u;

    var total: array<vec4<f32>, 4>;
    var sq = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        for (var q = 0u; q < 8u; q++) {
            let e = lidx + q * 256u;
            var av = 0.0;
            if (a_ok[q] && k0 + e % TK < p.k) {
                av = a[a_off[q] + k0 * p.a_cs];
            }
            let r = e / TK;
            a_tile[(e % TK) * 16u + r / 4u][r % 4u] = av;
        }
        for (var q = 0u; q < 2u; q++) {
            let e = lidx + q * 256u;
            var bv = vec4<f32>(0.0);
            if (b_ok[q] && k0 + e / 16u < p.k) {
                bv = load_b4(b_off[q] + k0 * (p.b_rs / 4u));
            }
            b_tile[e] = bv;
        }
        workgroupBarrier();
        var acc: array<vec4<f32>, 4>;
        for (var kk = 0u; kk < TK; kk++) {
            let av = a_tile[kk * 16u + lid.y];
            let bv = b_tile[kk * 16u + lid.x];
            acc[0] = fma(vec4<f32>(av.x), bv, acc[0]);
            acc[1] = fma(vec4<f32>(av.y), bv, acc[1]);
            acc[2] = fma(vec4<f32>(av.z), bv, acc[2]);
            acc[3] = fma(vec4<f32>(av.w), bv, acc[3]);
            if (norm) {
                sq = fma(av, av, sq);
            }
        }
        for (var i = 0u; i < 4u; i++) {
            total[i] += acc[i];
        }
        workgroupBarrier();
    }
    // Rows scaled by 1/sqrt(‖row‖² + 1e-6) (vmoe's eps inside the sqrt); 1 without the flag.
    var r = vec4<f32>(1.0);
    if (norm) {
        r = inverseSqrt(sq + vec4<f32>(1e-6));
    }
    let col = col0 + lid.x * 4u;
    if (col < p.n) {
        for (var i = 0u; i < 4u; i++) {
            store_vec4(z, row0 + lid.y * 4u + i, col, total[i] * r[i]);
        }
    }
}
