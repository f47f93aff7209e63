// Tiled GEMM for many rows: a 64×64 output tile per workgroup of 16×16, 4×4 outputs per invocation,
// K staged through workgroup memory 16 at a time. Needs gemm_common.wgsl in front.

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

var<workgroup> a_tile: array<f32, 1024>; // [TK][TM]
var<workgroup> b_tile: array<f32, 1024>; // [TK][TN]

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
    let row0 = (t / p.tiles_n) * TM;
    let col0 = (t % p.tiles_n) * TN;

    // acc: the current KC-chunk's sums (KC is a multiple of TK); total: the chunks added so far.
    var acc: array<vec4<f32>, 4>;
    var total: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i++) {
        acc[i] = vec4<f32>(0.0);
        total[i] = vec4<f32>(0.0);
    }

    // Each invocation loads the same 4 (row, depth) slots of A and (depth, col) slots of B in every
    // K step: their offsets are found once here, so the loop does no index division.
    var a_off: array<u32, 4>;
    var a_ok: array<bool, 4>;
    var b_off: array<u32, 4>;
    var b_ok: array<bool, 4>;
    for (var q = 0u; q < 4u; q++) {
        let e = lidx + q * 256u;
        let gr = row0 + e / TK;
        a_ok[q] = gr < p.m;
        a_off[q] = a_at(z, min(gr, p.m - 1u), e % TK);
        let gc = col0 + e % TN;
        b_ok[q] = gc < p.n;
        b_off[q] = b_at(z, e / TN, min(gc, p.n - 1u));
    }

    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        for (var q = 0u; q < 4u; q++) {
            let e = lidx + q * 256u;
            // A tile element (row e / TK, depth e % TK); neighbouring invocations take neighbouring depths.
            var av = 0.0;
            if (a_ok[q] && k0 + e % TK < p.k) {
                av = a[a_off[q] + k0 * p.a_cs];
            }
            a_tile[(e % TK) * TM + e / TK] = av;
            // B tile element (depth e / TN, col e % TN); neighbouring invocations take neighbouring columns.
            var bv = 0.0;
            if (b_ok[q] && k0 + e / TN < p.k) {
                bv = b[b_off[q] + k0 * p.b_rs];
            }
            b_tile[e] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let bo = kk * TN + lid.x * 4u;
            let bv = vec4<f32>(b_tile[bo], b_tile[bo + 1u], b_tile[bo + 2u], b_tile[bo + 3u]);
            let ao = kk * TM + lid.y * 4u;
            for (var i = 0u; i < 4u; i++) {
                acc[i] = fma(vec4<f32>(a_tile[ao + i]), bv, acc[i]);
            }
        }
        workgroupBarrier();
        // A chunk ends here (or K does): its sums join the total in chunk order.
        if ((k0 + TK) % KC == 0u || k0 + TK >= p.k) {
            for (var i = 0u; i < 4u; i++) {
                total[i] += acc[i];
                acc[i] = vec4<f32>(0.0);
            }
        }
    }

    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            store(z, row0 + lid.y * 4u + i, col0 + lid.x * 4u + j, total[i][j]);
        }
    }
}
