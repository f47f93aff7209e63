// y = GELU(x), one invocation per value: the training forward keeps the pre-activation x, which the
// backward needs, so GELU runs apart from the GEMM that produced x.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let i = item_index(invocation);
    if (i >= p.count) {
        return;
    }
    y[i] = gelu(x[i]);
}
