// The straightforward GEMM: one invocation per output element, A and B read straight from memory.
// Kept as the baseline of the benchmarks and the bit-for-bit reference of the tiled and skinny
// kernels (it sums in the canonical order of gemm_common.wgsl, plainly). Needs gemm_common.wgsl in front.

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let id = item_index(invocation);
    let per_batch = p.m * p.n;
    if (id >= per_batch * p.batch) {
        return;
    }
    let z = id / per_batch;
    let r = (id % per_batch) / p.n;
    let c = id % p.n;
    var total = 0.0;
    for (var k0 = 0u; k0 < p.k; k0 += KC) {
        var acc = 0.0;
        for (var k = k0; k < min(k0 + KC, p.k); k++) {
            acc = fma(a[a_at(z, r, k)], b[b_at(z, k, c)], acc);
        }
        total += acc;
    }
    store(z, r, c, total);
}
