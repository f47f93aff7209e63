// dx = dy · GELU'(x), in place over dy, one invocation per value.

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> grad: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let i = item_index(invocation);
    if (i >= p.count) {
        return;
    }
    grad[i] = grad[i] * gelu_grad(x[i]);
}
