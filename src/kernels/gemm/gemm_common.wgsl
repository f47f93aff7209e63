// Shared by the GEMM kernels (prepended to each at build time): C = act(alpha · A·B + bias), batched,
// over strided views. The GEMMs are the logits, slot inputs (Dᵀ X), both expert Dense layers and the
// combine (C Ỹ).
//
// Element (row r, col c) of operand V in batch z lives at
//   off + z·bs + (r / row_group)·group_stride + (r % row_group)·row_stride + c·col_stride,
// which covers plain, transposed and "p rows per example" (slot-major expert) layouts; B's columns
// may also come in panels: + (c / b_cg)·b_cgs + (c % b_cg)·b_cs.
// The canonical summation order, which every kernel follows so that an output's bits do not depend
// on the batch, the tile it falls in, or which kernel ran: K is cut into chunks of KC consecutive k
// (the last may be shorter); each chunk's products are fma'd k-ascending into an accumulator that
// starts at 0; the output is 0 + chunk 0 + chunk 1 + … added in chunk order. Chunks are independent,
// so a kernel may compute them in parallel (the split-K kernel) and add them in that order after.
const KC: u32 = 32u;

struct GemmParams {
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
    b_cg: u32,
    b_cgs: u32,
    b_group: u32,    // batch entries per B buffer (vec4 kernels: up to 4 buffers, gemm_b_*.wgsl)
    c_bs: u32,
    c_rg: u32,
    c_gs: u32,
    c_rs: u32,
    bias_bs: u32,
    flags: u32,      // bit 0: add bias; bits 1..2: 0 none, 1 GELU tanh, 2 GELU erf; bit 3: add into C (residual);
                     // bit 4: L2-normalise A's rows (vec4 kernel only); bits 8..11: vec4 column groups;
                     // bit 12: no single-row path (vec4)
    alpha: f32,
    tiles_m: u32,
    tiles_n: u32,
    a_off: u32,
    b_off: u32,
    c_off: u32,
}

@group(0) @binding(0) var<uniform> p: GemmParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> c: array<f32>;

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

// This workgroup's batch entry z and output tile t within it (tiles_m × tiles_n tiles per entry,
// from the folded grid); z ≥ p.batch past the last tile.
fn gemm_tile(wid: vec3<u32>, nwg: vec3<u32>) -> vec2<u32> {
    let tile = workgroup_index(wid, nwg);
    let per_batch = p.tiles_m * p.tiles_n;
    return vec2<u32>(tile / per_batch, tile % per_batch);
}

// The output's view: batch z, row gr → element offset of column 0.
fn a_at(z: u32, r: u32, k: u32) -> u32 {
    return p.a_off + z * p.a_bs + (r / p.a_rg) * p.a_gs + (r % p.a_rg) * p.a_rs + k * p.a_cs;
}

// B may be stored in column panels of b_cg columns, b_cgs apart (the expert kernels).
// B's batch entries may be spread over buffers of b_group entries each: z's offset is within its own.
fn b_at(z: u32, k: u32, c: u32) -> u32 {
    return p.b_off + (z % p.b_group) * p.b_bs + k * p.b_rs + (c / p.b_cg) * p.b_cgs + (c % p.b_cg) * p.b_cs;
}

// alpha · acc + bias, then the activation, then (residual) plus what C held; stored at (z, gr, gc)
// when inside the output.
fn store(z: u32, gr: u32, gc: u32, acc: f32) {
    if (gr >= p.m || gc >= p.n) {
        return;
    }
    var v = p.alpha * acc;
    if ((p.flags & 1u) != 0u) {
        v += bias[z * p.bias_bs + gc];
    }
    let act = (p.flags >> 1u) & 3u;
    if (act == 1u) {
        v = gelu_tanh(v);
    } else if (act == 2u) {
        v = gelu_erf(v);
    }
    let at = p.c_off + z * p.c_bs + (gr / p.c_rg) * p.c_gs + (gr % p.c_rg) * p.c_rs + gc;
    if ((p.flags & 8u) != 0u) {
        v += c[at];
    }
    c[at] = v;
}

// Four neighbouring columns of one row (the vec4 kernels' outputs).
fn store_vec4(z: u32, r: u32, c: u32, v: vec4<f32>) {
    store(z, r, c, v.x);
    store(z, r, c + 1u, v.y);
    store(z, r, c + 2u, v.z);
    store(z, r, c + 3u, v.w);
}
