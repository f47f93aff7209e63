// Rounds values in place to bfloat16, kept as f32: round to nearest, ties to even (jnp's
// `astype(bfloat16)`), as vmoe's `Bfloat16Dispatcher` does to a Soft MoE layer's input before
// X̃ = DᵀX and to the experts' outputs before Y = CỸ. NaN stays NaN; a value past bf16's largest
// rounds to infinity, as the cast does.

struct RoundBf16Params {
    len: u32,
}

@group(0) @binding(0) var<uniform> p: RoundBf16Params;
@group(0) @binding(1) var<storage, read_write> data: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let i = item_index(invocation);
    if (i >= p.len) {
        return;
    }
    let bits = bitcast<u32>(data[i]);
    if ((bits & 0x7fffffffu) > 0x7f800000u) {
        return;
    }
    data[i] = bitcast<f32>((bits + 0x7fffu + ((bits >> 16u) & 1u)) & 0xffff0000u);
}
