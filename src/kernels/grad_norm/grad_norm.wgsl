// The global gradient norm, first pass: one invocation per chunk of CHUNK values of one tensor's
// gradient, its squares fma'd in index order into partial[offset + chunk]. The chunks of every
// tensor are laid end to end in `partial`; grad_norm_finish.wgsl adds them in that order.

struct GradNormParams {
    count: u32,
    offset: u32,
}

const CHUNK: u32 = 256u;

@group(0) @binding(0) var<uniform> p: GradNormParams;
@group(0) @binding(1) var<storage, read> grad: array<f32>;
@group(0) @binding(2) var<storage, read_write> partial: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let c = item_index(invocation);
    if (c * CHUNK >= p.count) {
        return;
    }
    let end = min(p.count, (c + 1u) * CHUNK);
    var ss = 0.0;
    for (var i = c * CHUNK; i < end; i++) {
        ss = fma(grad[i], grad[i], ss);
    }
    partial[p.offset + c] = ss;
}
