// Column sums: dst[g, c] (+)= Σ_r src[off + g·gs + r·rs + c], rows r in ascending order, one
// invocation per (group, column). The bias gradients of the GEMMs (Σ over rows of the output's
// gradient, per expert for the experts' biases), the position embedding's (Σ over images) and the
// router scale's (Σ of per-slot partial sums).

struct ColumnSumParams {
    groups: u32,
    rows: u32,
    cols: u32,
    src_off: u32,
    src_gs: u32,
    src_rs: u32,
    dst_off: u32,
    dst_gs: u32,
    // Bit 0: add into dst instead of overwriting it.
    flags: u32,
}

@group(0) @binding(0) var<uniform> p: ColumnSumParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let id = item_index(invocation);
    if (id >= p.groups * p.cols) {
        return;
    }
    let g = id / p.cols;
    let c = id % p.cols;
    let base = p.src_off + g * p.src_gs + c;
    var sum = 0.0;
    for (var r = 0u; r < p.rows; r++) {
        sum += src[base + r * p.src_rs];
    }
    let at = p.dst_off + g * p.dst_gs + c;
    if ((p.flags & 1u) != 0u) {
        sum += dst[at];
    }
    dst[at] = sum;
}
