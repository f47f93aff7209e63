// x[i] += pos[i mod period]: the learned position embedding, the same for every image. The first
// `prefix` values of each period are set to pos instead (the class token's row: its `pos` already
// holds cls + its position, added once at upload, and the patch embedding writes nothing there).

struct AddPositionParams {
    total: u32,
    period: u32,
    prefix: u32,
}

@group(0) @binding(0) var<uniform> p: AddPositionParams;
@group(0) @binding(1) var<storage, read> pos: array<f32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let i = item_index(invocation);
    if (i >= p.total) {
        return;
    }
    let j = i % p.period;
    if (j < p.prefix) {
        x[i] = pos[j];
    } else {
        x[i] = x[i] + pos[j];
    }
}
