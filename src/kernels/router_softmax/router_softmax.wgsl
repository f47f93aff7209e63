// The router softmaxes from logits another dispatch wrote (router_softmaxes.wgsl does the work).

struct RouterSoftmaxParams {
    batch: u32,
    tokens: u32,
    slots: u32,
    row_lanes: u32, // invocations per row in router_rows_shared.wgsl (unused with subgroups)
    parts: u32,     // workgroups per example
}

@group(0) @binding(0) var<uniform> p: RouterSoftmaxParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> dispatch: array<f32>;
@group(0) @binding(3) var<storage, read_write> combine: array<f32>;

// The entry point's work (called by `main` in the row-reduction prelude).
fn route(wi: u32, t: u32, row_group: u32, lane: u32, groups: u32, lanes: u32) {
    softmaxes(wi, t, row_group, lane, groups, lanes, 0u);
}
