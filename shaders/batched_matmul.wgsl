// C = act(alpha · A·B + bias), batched, over strided views: the one GEMM engine behind the logits,
// slot inputs (Dᵀ X), both expert Dense layers and the combine (C Ỹ).
//
// Element (row r, col c) of operand V in batch z lives at
//   z·bs + (r / row_group)·group_stride + (r % row_group)·row_stride + c·col_stride,
// which covers plain, transposed and "p rows per example" (slot-major expert) layouts.
// 64×64 output tile per workgroup, 4×4 per invocation, K in steps of 16 in a fixed order,
// so every output element is summed the same way whatever the batch holds.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    a_bs: u32,
    a_rg: u32,
    a_gs: u32,
    a_rs: u32,
    a_cs: u32,
    b_bs: u32,
    b_rs: u32,
    b_cs: u32,
    c_bs: u32,
    c_rg: u32,
    c_gs: u32,
    c_rs: u32,
    bias_bs: u32,
    flags: u32,      // bit 0: add bias; bits 1..2: 0 none, 1 GELU tanh, 2 GELU erf
    alpha: f32,
    tiles_m: u32,
    tiles_n: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 16u;

var<workgroup> a_tile: array<f32, 1024>; // [TK][TM]
var<workgroup> b_tile: array<f32, 1024>; // [TK][TN]

fn gelu_tanh(x: f32) -> f32 {
    // Clamped because some backends' tanh returns NaN for large arguments; tanh(±15) is ±1 in f32.
    let u = clamp(0.7978845608028654 * (x + 0.044715 * x * x * x), -15.0, 15.0);
    return 0.5 * x * (1.0 + tanh(u));
}

fn erf_approx(x: f32) -> f32 {
    // Abramowitz & Stegun 7.1.26: |error| < 1.5e-7, below f32 resolution of the GELU output.
    let z = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * z);
    let poly = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t;
    return sign(x) * (1.0 - poly * exp(-z * z));
}

fn gelu_erf(x: f32) -> f32 {
    return 0.5 * x * (1.0 + erf_approx(x * 0.7071067811865476));
}

@compute @workgroup_size(16, 16, 1)
fn main(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) lidx: u32,
) {
    let tile = wid.x + wid.y * nwg.x;
    let per_batch = p.tiles_m * p.tiles_n;
    if (tile >= per_batch * p.batch) {
        return;
    }
    let z = tile / per_batch;
    let t = tile % per_batch;
    let row0 = (t / p.tiles_n) * TM;
    let col0 = (t % p.tiles_n) * TN;
    let a_base = z * p.a_bs;
    let b_base = z * p.b_bs;

    var acc: array<vec4<f32>, 4>;
    for (var i = 0u; i < 4u; i++) {
        acc[i] = vec4<f32>(0.0);
    }

    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        for (var q = 0u; q < 4u; q++) {
            let e = lidx + q * 256u;
            // A tile element (row r, depth kk); neighbouring invocations take neighbouring depths.
            let r = e / TK;
            let kk = e % TK;
            let gr = row0 + r;
            let gk = k0 + kk;
            var av = 0.0;
            if (gr < p.m && gk < p.k) {
                av = a[a_base + (gr / p.a_rg) * p.a_gs + (gr % p.a_rg) * p.a_rs + gk * p.a_cs];
            }
            a_tile[kk * TM + r] = av;
            // B tile element (depth kb, col cc); neighbouring invocations take neighbouring columns.
            let kb = e / TN;
            let cc = e % TN;
            let gkb = k0 + kb;
            let gc = col0 + cc;
            var bv = 0.0;
            if (gkb < p.k && gc < p.n) {
                bv = b[b_base + gkb * p.b_rs + gc * p.b_cs];
            }
            b_tile[kb * TN + cc] = bv;
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
    }

    let act = (p.flags >> 1u) & 3u;
    for (var i = 0u; i < 4u; i++) {
        let gr = row0 + lid.y * 4u + i;
        if (gr >= p.m) {
            continue;
        }
        let c_row = z * p.c_bs + (gr / p.c_rg) * p.c_gs + (gr % p.c_rg) * p.c_rs;
        for (var j = 0u; j < 4u; j++) {
            let gc = col0 + lid.x * 4u + j;
            if (gc >= p.n) {
                continue;
            }
            var v = p.alpha * acc[i][j];
            if ((p.flags & 1u) != 0u) {
                v += bias[z * p.bias_bs + gc];
            }
            if (act == 1u) {
                v = gelu_tanh(v);
            } else if (act == 2u) {
                v = gelu_erf(v);
            }
            c[c_row + gc] = v;
        }
    }
}
