// Prepended to every kernel at build time (`kernels::wgsl!`), ahead of gemm_common.wgsl and the like.
// Each kernel's uniform (`struct FooParams`, at @binding(0)) is mirrored field for field by the Rust
// struct of the same name next to its binding code; a unit test compares the two layouts.

// Invocations per workgroup of the one-item-per-invocation kernels and of the 64-lane GEMMs: the
// host's `kernels::WORKGROUP_SIZE` (a unit test keeps the two equal).
const WG_SIZE: u32 = 64u;

// The linear index of this workgroup. The host folds a dispatch too large for one grid dimension
// into (x, y) (`gpu::workgroup_grid`); the kernels skip the overhang past the last workgroup.
fn workgroup_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

// The builtins of a kernel of WG_SIZE invocations per workgroup. Only for kernels without barriers:
// uniformity analysis judges a parameter whole, and `lidx` makes the whole struct non-uniform.
struct Invocation {
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lidx: u32,
}

// The invocation's index over the whole (folded) grid: its item, in the one-item kernels.
fn item_index(invocation: Invocation) -> u32 {
    return workgroup_index(invocation.wid, invocation.nwg) * WG_SIZE + invocation.lidx;
}
