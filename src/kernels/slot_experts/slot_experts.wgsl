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

    // X̃ rows of this expert: Σ_t D[t, slot] · X[t, :], four columns per output.
    for (var o = lidx; o < rows * d4; o += WG_SIZE) {
        let r = o / d4;
        let c4 = o % d4;
        let example = r / p.p;
        let slot = e * p.p + r % p.p;
        var di = example * m * s + slot;
        var xi = example * m * d4 + c4;
        var t = vec4<f32>(0.0);
        for (var k0 = 0u; k0 < m; k0 += KC) {
            var acc = vec4<f32>(0.0);
            for (var k = k0; k < min(k0 + KC, m); k++) {
                acc = fma(vec4<f32>(dispatch[di]), x4[xi], acc);
                di += s;
                xi += d4;
            }
            t += acc;
        }
        let at = r * d + c4 * 4u;
        stage[at] = t.x;
        stage[at + 1u] = t.y;
        stage[at + 2u] = t.z;
        stage[at + 3u] = t.w;
    }
    workgroupBarrier();

    // Rows go in pairs (the second clamped to the last row when rows is odd): each weight vec4 is
    // loaded once for both.
    let pairs = (rows + 1u) / 2u;

    // H = act(X̃ W0_e + b0_e).
    let w0_base = e * d * h;
    for (var o = lidx; o < pairs * h4; o += WG_SIZE) {
        let r0 = (o / h4) * 2u;
        let r1 = min(r0 + 1u, rows - 1u);
        let c = (o % h4) * 4u;
        let row0 = r0 * d;
        let row1 = r1 * d;
        var wi = (w0_base + column_at(c, p.w0_cg, p.w0_cgs)) / 4u;
        let step = p.w0_rs / 4u;
        var t0 = vec4<f32>(0.0);
        var t1 = vec4<f32>(0.0);
        for (var k0 = 0u; k0 < d; k0 += KC) {
            var acc0 = vec4<f32>(0.0);
            var acc1 = vec4<f32>(0.0);
            for (var k = k0; k < min(k0 + KC, d); k++) {
                let w = w0[wi];
                acc0 = fma(vec4<f32>(stage[row0 + k]), w, acc0);
                acc1 = fma(vec4<f32>(stage[row1 + k]), w, acc1);
                wi += step;
            }
            t0 += acc0;
            t1 += acc1;
        }
        let bias = b0[(e * h + c) / 4u];
        store_hidden(hidden + r0 * h + c, activate(t0 + bias));
        store_hidden(hidden + r1 * h + c, activate(t1 + bias));
    }
    workgroupBarrier();

    // Ỹ = H W1_e + b1_e, stored slot-major [batch, n·p, d].
    let w1_base = e * h * d;
    for (var o = lidx; o < pairs * d4; o += WG_SIZE) {
        let r0 = (o / d4) * 2u;
        let r1 = min(r0 + 1u, rows - 1u);
        let c = (o % d4) * 4u;
        let row0 = hidden + r0 * h;
        let row1 = hidden + r1 * h;
        var wi = (w1_base + column_at(c, p.w1_cg, p.w1_cgs)) / 4u;
        let step = p.w1_rs / 4u;
        var t0 = vec4<f32>(0.0);
        var t1 = vec4<f32>(0.0);
        for (var k0 = 0u; k0 < h; k0 += KC) {
            var acc0 = vec4<f32>(0.0);
            var acc1 = vec4<f32>(0.0);
            for (var k = k0; k < min(k0 + KC, h); k++) {
                let w = w1[wi];
                acc0 = fma(vec4<f32>(stage[row0 + k]), w, acc0);
                acc1 = fma(vec4<f32>(stage[row1 + k]), w, acc1);
                wi += step;
            }
            t0 += acc0;
            t1 += acc1;
        }
        let bias = b1[(e * d + c) / 4u];
        slots_out[slot_row(e, r0) + c / 4u] = t0 + bias;
        slots_out[slot_row(e, r1) + c / 4u] = t1 + bias;
    }
}

// Four hidden values of one row into workgroup memory (a clamped duplicate row writes the same values
// as its twin).
fn store_hidden(at: u32, v: vec4<f32>) {
    stage[at] = v.x;
    stage[at + 1u] = v.y;
    stage[at + 2u] = v.z;
    stage[at + 3u] = v.w;
}

// Where row r of expert e (example r / p, slot e·p + r % p) starts in slot-major Ỹ, in vec4s.
fn slot_row(e: u32, r: u32) -> u32 {
    return ((r / p.p) * p.n * p.p + e * p.p + r % p.p) * (p.d / 4u);
}
