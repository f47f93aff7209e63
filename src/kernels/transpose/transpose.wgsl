// dst[z, c, r] = src[z, r, c] for `batch` row-major rows × cols matrices, one invocation per value
// (neighbouring invocations read neighbouring source values). Training keeps each weight's
// transpose beside it, so that the input gradients dX = dY·Wᵀ read a row-major B, which the vec4
// GEMMs need.

struct TransposeParams {
    batch: u32,
    rows: u32,
    cols: u32,
}

@group(0) @binding(0) var<uniform> p: TransposeParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(WG_SIZE)
fn main(invocation: Invocation) {
    let i = item_index(invocation);
    let per = p.rows * p.cols;
    if (i >= p.batch * per) {
        return;
    }
    let z = i / per;
    let r = (i % per) / p.cols;
    let c = i % p.cols;
    dst[z * per + c * p.rows + r] = src[i];
}
