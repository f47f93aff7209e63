// The router's slot parameters for one training step, one invocation per slot column j of
// mu [d, s]: Φ̂_j = mu_j · 1/sqrt(‖mu_j‖² + 1e-6) (as l2_normalize.wgsl, squares fma'd k-ascending;
// mu_j itself without normalisation) and Φs = scale · Φ̂, so that the logits GEMM L = X̂ Φs needs no
// host-side scale: the scale is a learned value in a buffer, changing every step.

struct RouterScaleParams {
    d: u32,
    slots: u32,
    // Bit 0: normalise the columns.
    flags: u32,
}

@group(0) @binding(0) var<uniform> p: RouterScaleParams;
@group(0) @binding(1) var<storage, read> mu: array<f32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read_write> phi_hat: array<f32>;
@group(0) @binding(4) var<storage, read_write> phi_scaled: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let j = item_index(invocation);
    if (j >= p.slots) {
        return;
    }
    var inv = 1.0;
    if ((p.flags & 1u) != 0u) {
        var ss = 0.0;
        for (var k = 0u; k < p.d; k++) {
            let v = mu[k * p.slots + j];
            ss = fma(v, v, ss);
        }
        inv = inverseSqrt(ss + 1e-6);
    }
    let s = scale[0];
    for (var k = 0u; k < p.d; k++) {
        let at = k * p.slots + j;
        let h = mu[at] * inv;
        phi_hat[at] = h;
        phi_scaled[at] = s * h;
    }
}
