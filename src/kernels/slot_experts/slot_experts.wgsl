// The Soft MoE layer's middle in one dispatch, for small layers at small batch: one workgroup per
// expert e computes its slots' inputs X̃ = DᵀX, the hidden H = GELU(X̃ W0_e + b0_e) and the outputs
// Ỹ = H W1_e + b1_e, X̃ and H staying in workgroup memory. Three GEMM dispatches become one; each
// output is summed in the canonical order of gemm_common.wgsl (chunks of KC k, fma'd k-ascending,
// chunk sums added in order) and finished as its GEMM epilogue finishes it, so the bits are those
// of the three-GEMM path (slot_inputs, dense0, dense1 in layers/stages.rs) whatever the batch.
// Rows of expert e: r = example·p + j for slot e·p + j of each example (r < batch·p).

const KC: u32 = 32u;
// Workgroup memory for X̃ (rows × d) and H (rows × h) is `STAGE` floats, a constant the host appends
// (`slot_experts::KERNELS`): 1024 or 4096 (16 KiB, WebGPU's guaranteed minimum), the least that
// holds the rows, since CPU adapters pay for every workgroup's memory.

struct SlotExpertsParams {
    batch: u32,
    tokens: u32,
    d: u32,
    n: u32,
    p: u32,
    h: u32,
    // 0: none, 1: GELU tanh, 2: GELU erf (Dense₀'s activation).
    act: u32,
    // The expert kernels' storage (layers/stages.rs `expert_kernel_view`): row stride, column panel
    // width and panel stride of W0 [d, h] and W1 [h, d]; one expert's kernel after another.
    w0_rs: u32,
    w0_cg: u32,
    w0_cgs: u32,
    w1_rs: u32,
    w1_cg: u32,
    w1_cgs: u32,
}

@group(0) @binding(0) var<uniform> p: SlotExpertsParams;
@group(0) @binding(1) var<storage, read> dispatch: array<f32>;
@group(0) @binding(2) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> w0: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> b0: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> w1: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> b1: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> slots_out: array<vec4<f32>>;

var<workgroup> stage: array<f32, STAGE>;

// Dense₀'s activation as a pipeline constant on CPU adapters, which would otherwise run both GELUs
// masked (see SWITCHES in gemm_common.wgsl); the default reads p.act.
override ACT: u32 = 0xffffffffu;

fn activate(v: vec4<f32>) -> vec4<f32> {
    let act = select(ACT, p.act, ACT == 0xffffffffu);
    if (act == 1u) {
        return vec4<f32>(gelu_tanh(v.x), gelu_tanh(v.y), gelu_tanh(v.z), gelu_tanh(v.w));
    }
    if (act == 2u) {
        return vec4<f32>(gelu_erf(v.x), gelu_erf(v.y), gelu_erf(v.z), gelu_erf(v.w));
    }
    return v;
}

// Element offset of column c in row 0 of one expert's kernel stored in panels of `cg` columns
// `cgs` apart (row-major: one panel); row k adds k times the row stride. Hoisted out of the k loops:
// integer division is dear where lanes are CPU SIMD lanes.
fn column_at(c: u32, cg: u32, cgs: u32) -> u32 {
    return (c / cg) * cgs + (c % cg);
}

@compute @workgroup_size(WG_SIZE)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lidx: u32) {
    let e = workgroup_index(wid, nwg);
    if (e >= p.n) {
        return;
    }
    let m = p.tokens;
    let d = p.d;
    let h = p.h;
    let s = p.n * p.p;
    let rows = p.batch * p.p;
    let d4 = d / 4u;
    let h4 = h / 4u;
    let hidden = rows * d;

    // Rows go in pairs of slots of one example (the second clamped to the example's last slot when p
    // is odd): each X value, and below each weight vec4, is loaded once for both rows.
    let pairs = p.batch * ((p.p + 1u) / 2u);

    // X̃ rows of this expert: Σ_t D[t, slot] · X[t, :], four columns of both rows per output.
    for (var o = lidx; o < pairs * d4; o += WG_SIZE) {
        let r0 = pair_row(o / d4);
        let r1 = pair_twin(o / d4);
        let example = r0 / p.p;
        let c4 = o % d4;
        var d0 = example * m * s + e * p.p + r0 % p.p;
        var d1 = example * m * s + e * p.p + r1 % p.p;
        var xi = example * m * d4 + c4;
        var t0 = vec4<f32>(0.0);
        var t1 = vec4<f32>(0.0);
        for (var k0 = 0u; k0 < m; k0 += KC) {
            var acc0 = vec4<f32>(0.0);
            var acc1 = vec4<f32>(0.0);
            for (var k = k0; k < min(k0 + KC, m); k++) {
                let xv = x4[xi];
                acc0 = fma(vec4<f32>(dispatch[d0]), xv, acc0);
                acc1 = fma(vec4<f32>(dispatch[d1]), xv, acc1);
                d0 += s;
                d1 += s;
                xi += d4;
            }
            t0 += acc0;
            t1 += acc1;
        }
        store_stage(r0 * d + c4 * 4u, t0);
        store_stage(r1 * d + c4 * 4u, t1);
    }
    workgroupBarrier();

    // H = act(X̃ W0_e + b0_e), eight columns (two vec4, the second clamped to the last) of a pair.
    let w0_base = e * d * h;
    let h8 = (h4 + 1u) / 2u;
    for (var o = lidx; o < pairs * h8; o += WG_SIZE) {
        let r0 = pair_row(o / h8);
        let r1 = pair_twin(o / h8);
        let ca = (o % h8) * 8u;
        let cb = min(ca + 4u, h - 4u);
        let row0 = r0 * d;
        let row1 = r1 * d;
        var wa = (w0_base + column_at(ca, p.w0_cg, p.w0_cgs)) / 4u;
        var wb = (w0_base + column_at(cb, p.w0_cg, p.w0_cgs)) / 4u;
        let step = p.w0_rs / 4u;
        var t = Pair2(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
        for (var k0 = 0u; k0 < d; k0 += KC) {
            var acc = Pair2(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
            for (var k = k0; k < min(k0 + KC, d); k++) {
                let x0 = vec4<f32>(stage[row0 + k]);
                let x1 = vec4<f32>(stage[row1 + k]);
                let va = w0[wa];
                let vb = w0[wb];
                acc = Pair2(fma(x0, va, acc.a0), fma(x0, vb, acc.b0), fma(x1, va, acc.a1), fma(x1, vb, acc.b1));
                wa += step;
                wb += step;
            }
            t = Pair2(t.a0 + acc.a0, t.b0 + acc.b0, t.a1 + acc.a1, t.b1 + acc.b1);
        }
        let ba = b0[(e * h + ca) / 4u];
        let bb = b0[(e * h + cb) / 4u];
        store_stage(hidden + r0 * h + ca, activate(t.a0 + ba));
        store_stage(hidden + r0 * h + cb, activate(t.b0 + bb));
        store_stage(hidden + r1 * h + ca, activate(t.a1 + ba));
        store_stage(hidden + r1 * h + cb, activate(t.b1 + bb));
    }
    workgroupBarrier();

    // Ỹ = H W1_e + b1_e, stored slot-major [batch, n·p, d], eight columns of a pair as above.
    let w1_base = e * h * d;
    let d8 = (d4 + 1u) / 2u;
    for (var o = lidx; o < pairs * d8; o += WG_SIZE) {
        let r0 = pair_row(o / d8);
        let r1 = pair_twin(o / d8);
        let ca = (o % d8) * 8u;
        let cb = min(ca + 4u, d - 4u);
        let row0 = hidden + r0 * h;
        let row1 = hidden + r1 * h;
        var wa = (w1_base + column_at(ca, p.w1_cg, p.w1_cgs)) / 4u;
        var wb = (w1_base + column_at(cb, p.w1_cg, p.w1_cgs)) / 4u;
        let step = p.w1_rs / 4u;
        var t = Pair2(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
        for (var k0 = 0u; k0 < h; k0 += KC) {
            var acc = Pair2(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
            for (var k = k0; k < min(k0 + KC, h); k++) {
                let x0 = vec4<f32>(stage[row0 + k]);
                let x1 = vec4<f32>(stage[row1 + k]);
                let va = w1[wa];
                let vb = w1[wb];
                acc = Pair2(fma(x0, va, acc.a0), fma(x0, vb, acc.b0), fma(x1, va, acc.a1), fma(x1, vb, acc.b1));
                wa += step;
                wb += step;
            }
            t = Pair2(t.a0 + acc.a0, t.b0 + acc.b0, t.a1 + acc.a1, t.b1 + acc.b1);
        }
        let ba = b1[(e * d + ca) / 4u];
        let bb = b1[(e * d + cb) / 4u];
        slots_out[slot_row(e, r0) + ca / 4u] = t.a0 + ba;
        slots_out[slot_row(e, r0) + cb / 4u] = t.b0 + bb;
        slots_out[slot_row(e, r1) + ca / 4u] = t.a1 + ba;
        slots_out[slot_row(e, r1) + cb / 4u] = t.b1 + bb;
    }
}

// Two rows × two vec4 of columns (a: the first four, b: the next), a struct rather than an array:
// lavapipe keeps private arrays in memory.
struct Pair2 {
    a0: vec4<f32>,
    b0: vec4<f32>,
    a1: vec4<f32>,
    b1: vec4<f32>,
}

// The rows of pair `q`: slot j0 = 2·(q % pairs per example) of example q / pairs per example, and its
// twin j0 + 1 (j0 itself when that is past the last slot, as p odd leaves the last pair one row).
fn pair_row(q: u32) -> u32 {
    let pairs_per = (p.p + 1u) / 2u;
    return (q / pairs_per) * p.p + (q % pairs_per) * 2u;
}

fn pair_twin(q: u32) -> u32 {
    let pairs_per = (p.p + 1u) / 2u;
    let j0 = (q % pairs_per) * 2u;
    return (q / pairs_per) * p.p + min(j0 + 1u, p.p - 1u);
}

// Four values of one row into workgroup memory (a clamped duplicate row or column writes the same
// values as its twin).
fn store_stage(at: u32, v: vec4<f32>) {
    stage[at] = v.x;
    stage[at + 1u] = v.y;
    stage[at + 2u] = v.z;
    stage[at + 3u] = v.w;
}

// Where row r of expert e (example r / p, slot e·p + r % p) starts in slot-major Ỹ, in vec4s.
fn slot_row(e: u32, r: u32) -> u32 {
    return ((r / p.p) * p.n * p.p + e * p.p + r % p.p) * (p.d / 4u);
}
