// Shared by the GEMM kernels (prepended to each at build time, after gelu/gelu_functions.wgsl): C = act(alpha · A·B + bias), batched,
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
                     // bit 4: L2-normalise A's rows (vec4 kernel only); bit 5: a view's groups are not a power
                     // of two (grouped_offset divides); bits 8..11: vec4 column groups;
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

// This workgroup's batch entry z and output tile t within it (tiles_m × tiles_n tiles per entry,
// from the folded grid); z ≥ p.batch past the last tile.
fn gemm_tile(wid: vec3<u32>, nwg: vec3<u32>) -> vec2<u32> {
    let tile = workgroup_index(wid, nwg);
    let per_batch = p.tiles_m * p.tiles_n;
    return vec2<u32>(tile / per_batch, tile % per_batch);
}

// Where one invocation of a register-blocked vec4 kernel works: batch entry z and the first row and
// column of its `rows` × `cols` block, and whether that block starts inside the output (not past the
// last tile, row or column). The WG_SIZE invocations are (WG_SIZE / G) row lanes × G column lanes,
// G = 2^(flag bits 8..11) chosen by the host to fit the output's width.
struct LaneBlock {
    z: u32,
    row0: u32,
    col: u32,
    inside: bool,
}

fn lane_block(wid: vec3<u32>, nwg: vec3<u32>, lidx: u32, rows: u32, cols: u32) -> LaneBlock {
    let at = gemm_tile(wid, nwg);
    let g_log2 = (p.flags >> 8u) & 15u;
    let g = 1u << g_log2;
    let row0 = (at.y / p.tiles_n) * rows * (WG_SIZE >> g_log2) + (lidx >> g_log2) * rows;
    let col = ((at.y % p.tiles_n) * g + (lidx & (g - 1u))) * cols;
    return LaneBlock(at.x, row0, col, at.x < p.batch && row0 < p.m && col < p.n);
}

// (i / g) · gs + (i % g) · s, the offset of item i in groups of g items gs apart, without an integer
// division for one group (g = u32::MAX, the views' default) or a power-of-two g: CPU adapters
// scalarise vector division, and it was most of a small GEMM's time there. The branches are uniform;
// where no view groups by another count (switch bit 5 clear) the division is compiled away, which a
// CPU adapter, running the branches masked, would otherwise pay for too.
fn grouped_offset(i: u32, g: u32, gs: u32, s: u32) -> u32 {
    if (g == 0xffffffffu) {
        return i * s;
    }
    if ((g & (g - 1u)) == 0u || (switches() & 32u) == 0u) {
        return (i >> countTrailingZeros(g)) * gs + (i & (g - 1u)) * s;
    }
    return (i / g) * gs + (i % g) * s;
}

// A's element (z, r, k).
fn a_at(z: u32, r: u32, k: u32) -> u32 {
    return p.a_off + z * p.a_bs + grouped_offset(r, p.a_rg, p.a_gs, p.a_rs) + k * p.a_cs;
}

// B may be stored in column panels of b_cg columns, b_cgs apart (the expert kernels).
// B's batch entries may be spread over buffers of b_group entries each: z's offset is within its own.
fn b_at(z: u32, k: u32, c: u32) -> u32 {
    return p.b_off + grouped_offset(z, p.b_group, 0u, p.b_bs) + k * p.b_rs + grouped_offset(c, p.b_cg, p.b_cgs, p.b_cs);
}

// C's element (z, gr, 0).
fn c_row(z: u32, gr: u32) -> u32 {
    return p.c_off + z * p.c_bs + grouped_offset(gr, p.c_rg, p.c_gs, p.c_rs);
}

// The flags that switch code on and off, GemmParams.flags bits 0…5 (bias, activation, add into C,
// row normalisation, groups that are not a power of two), as a pipeline constant where the host
// specialises them: a CPU adapter runs both sides of every branch, masked, so a switched-off bias
// load or GELU costs it as much as a used one, while a constant condition is compiled away. The
// default reads them from the uniform (GPUs).
override SWITCHES: u32 = 0xffffffffu;

fn switches() -> u32 {
    if (SWITCHES == 0xffffffffu) {
        return p.flags & 63u;
    }
    return SWITCHES;
}

// alpha · acc + bias, then the activation, then (residual) plus what C held; stored at C's element
// `at`, column gc of batch entry z.
fn finish(z: u32, gc: u32, at: u32, acc: f32) {
    let e = switches();
    var v = p.alpha * acc;
    if ((e & 1u) != 0u) {
        v += bias[z * p.bias_bs + gc];
    }
    let act = (e >> 1u) & 3u;
    if (act == 1u) {
        v = gelu_tanh(v);
    } else if (act == 2u) {
        v = gelu_erf(v);
    }
    if ((e & 8u) != 0u) {
        v += c[at];
    }
    c[at] = v;
}

// `finish` at (z, gr, gc) when inside the output.
fn store(z: u32, gr: u32, gc: u32, acc: f32) {
    if (gr >= p.m || gc >= p.n) {
        return;
    }
    finish(z, gc, c_row(z, gr) + gc, acc);
}

// Four neighbouring columns of one row (the vec4 kernels' outputs; N is a multiple of 4 there, so
// the four are inside the output together or not at all), the row's offset found once.
fn store_vec4(z: u32, r: u32, c: u32, v: vec4<f32>) {
    if (r >= p.m || c >= p.n) {
        return;
    }
    store_vec4_at(z, c_row(z, r) + c, c, v);
}

// The four columns c… at C's element `at` (inside the output).
fn store_vec4_at(z: u32, at: u32, c: u32, v: vec4<f32>) {
    finish(z, c, at, v.x);
    finish(z, c + 1u, at + 1u, v.y);
    finish(z, c + 2u, at + 2u, v.z);
    finish(z, c + 3u, at + 3u, v.w);
}
