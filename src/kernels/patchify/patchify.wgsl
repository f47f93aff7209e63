// Cuts images [b, S, S, C] into patch rows [b·m, P·P·C]: token t = gy·G + gx (row-major over the
// patch grid), values in (py, px, c) order to match `embedding/kernel` [P, P, C, d].

struct PatchifyParams {
    total: u32,
    image_size: u32,
    patch_size: u32,
    channels: u32,
    grid: u32,
}

@group(0) @binding(0) var<uniform> p: PatchifyParams;
@group(0) @binding(1) var<storage, read> images: array<f32>;
@group(0) @binding(2) var<storage, read_write> patches: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let i = item_index(invocation);
    if (i >= p.total) {
        return;
    }
    let pd = p.patch_size * p.patch_size * p.channels;
    let row = i / pd;
    let k = i % pd;
    let tokens = p.grid * p.grid;
    let b = row / tokens;
    let t = row % tokens;
    let y = (t / p.grid) * p.patch_size + k / (p.patch_size * p.channels);
    let x = (t % p.grid) * p.patch_size + (k / p.channels) % p.patch_size;
    patches[i] = images[((b * p.image_size + y) * p.image_size + x) * p.channels + k % p.channels];
}
