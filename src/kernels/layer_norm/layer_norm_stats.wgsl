// The statistics of one row of `src` (p.d values from `base`), shared by layer_norm.wgsl and its
// backward so that the backward's recomputed mean and 1/σ are the forward's bit for bit: the mean,
// then the variance of the centred values (two passes, squares fma'd), 1/sqrt(var + eps).
fn layer_norm_stats(base: u32) -> vec2<f32> {
    var sum = 0.0;
    for (var j = 0u; j < p.d; j++) {
        sum += src[base + j];
    }
    let mean = sum / f32(p.d);
    var ss = 0.0;
    for (var j = 0u; j < p.d; j++) {
        let c = src[base + j] - mean;
        ss = fma(c, c, ss);
    }
    return vec2<f32>(mean, inverseSqrt(ss / f32(p.d) + p.eps));
}
