// The backward of router_scale.wgsl, one invocation per slot column j, from dΦs = d loss / d Φs:
// d scale gets Σ_k dΦs_kj Φ̂_kj (this column's share, written to partial[j] and summed over the
// columns in order by column_sum.wgsl); g = scale · dΦs_j is d loss / d Φ̂_j, and
// d mu_j = inv · (g − Φ̂_j (Φ̂_j · g)) with inv = 1/sqrt(‖mu_j‖² + 1e-6) (or g itself without
// normalisation). Φ̂ is recomputed from mu, as the forward computed it.

struct RouterScaleParams {
    d: u32,
    slots: u32,
    flags: u32,
}

@group(0) @binding(0) var<uniform> p: RouterScaleParams;
@group(0) @binding(1) var<storage, read> mu: array<f32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read> d_phi_scaled: array<f32>;
@group(0) @binding(4) var<storage, read_write> d_mu: array<f32>;
@group(0) @binding(5) var<storage, read_write> partial: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let j = item_index(invocation);
    if (j >= p.slots) {
        return;
    }
    let norm = (p.flags & 1u) != 0u;
    var inv = 1.0;
    if (norm) {
        var ss = 0.0;
        for (var k = 0u; k < p.d; k++) {
            let v = mu[k * p.slots + j];
            ss = fma(v, v, ss);
        }
        inv = inverseSqrt(ss + 1e-6);
    }
    let s = scale[0];
    var ds = 0.0;
    var hg = 0.0;
    for (var k = 0u; k < p.d; k++) {
        let at = k * p.slots + j;
        let h = mu[at] * inv;
        let g = d_phi_scaled[at];
        ds = fma(g, h, ds);
        hg = fma(h, s * g, hg);
    }
    partial[j] = ds;
    for (var k = 0u; k < p.d; k++) {
        let at = k * p.slots + j;
        let g = s * d_phi_scaled[at];
        if (norm) {
            d_mu[at] = inv * (g - mu[at] * inv * hg);
        } else {
            d_mu[at] = g;
        }
    }
}
