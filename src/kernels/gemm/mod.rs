//! The GEMM kernels: C = act(alpha·A·B + bias) over strided, batched views.
//! Where B's layout allows vec4 reads: on GPUs `gemm_splitk.wgsl` (K split over a 256-invocation
//! workgroup) for up to `SPLITK_MAX_ROWS` rows and `gemm_tiled_vec4.wgsl` (64×64 tiles through
//! workgroup memory) from `TILED_VEC4_MIN_ROWS` on, `gemm_vec4.wgsl` (8×4 per invocation, no
//! workgroup memory) between them; on CPU adapters `gemm_vec4.wgsl` for one or two rows (its
//! single-row path), `gemm_vec4_wide.wgsl` (8×8 per invocation) for more and
//! `gemm_vec4_wide16.wgsl` (16×16) for large GEMMs, each also without the switch over B's buffers
//! when B is one buffer (`gemm_b1_*.wgsl`); otherwise
//! `gemm_tiled.wgsl` (64×64 tiles) for many rows and `gemm_skinny.wgsl` (4×64) for few;
//! `gemm_naive.wgsl` is the baseline. All sit behind `gemm_common.wgsl` and sum in its canonical
//! order (`SUM_CHUNK`), so they agree bit for bit.

use super::{kernel_params, u32_of, wgsl, Op, WORKGROUP_SIZE};
use crate::config::Gelu;
use crate::error::{Error, Result};
use crate::gpu::{GpuContext, Kernel};

pub mod reference;
#[cfg(test)]
mod tests;

pub const KERNEL: Kernel =
    Kernel::new::<GemmParams>("gemm_tiled", wgsl!("gelu/gelu_functions.wgsl", "gemm/gemm_common.wgsl", "gemm/gemm_tiled.wgsl"));

pub const SKINNY_KERNEL: Kernel =
    Kernel::new::<GemmParams>("gemm_skinny", wgsl!("gelu/gelu_functions.wgsl", "gemm/gemm_common.wgsl", "gemm/gemm_skinny.wgsl"));

pub const NAIVE_KERNEL: Kernel =
    Kernel::new::<GemmParams>("gemm_naive", wgsl!("gelu/gelu_functions.wgsl", "gemm/gemm_common.wgsl", "gemm/gemm_naive.wgsl"));

/// A vec4-B GEMM kernel: `gemm_common.wgsl`, how B is read (`gemm_b_*.wgsl`, `gemm_b1_*.wgsl`) and
/// the kernel file; `f16`: B stored as f16.
macro_rules! vec4_gemm {
    ($name:literal, $b:literal, $kernel:literal) => {
        Kernel::new::<GemmParams>($name, wgsl!("gelu/gelu_functions.wgsl", "gemm/gemm_common.wgsl", $b, $kernel))
    };
    (f16 $name:literal, $b:literal, $kernel:literal) => {
        Kernel::new::<GemmParams>($name, wgsl!(enable f16; "gelu/gelu_functions.wgsl", "gemm/gemm_common.wgsl", $b, $kernel))
    };
}

/// The register-blocked vec4 GEMM, 8 rows × 4 columns per invocation.
pub const VEC4_KERNEL: Kernel = vec4_gemm!("gemm_vec4", "gemm/gemm_b_f32.wgsl", "gemm/gemm_vec4.wgsl");
/// The vec4 GEMM with B stored as f16 (needs the `shader-f16` feature).
pub const VEC4_F16_KERNEL: Kernel = vec4_gemm!(f16 "gemm_vec4_f16", "gemm/gemm_b_f16.wgsl", "gemm/gemm_vec4.wgsl");
/// The register-blocked GEMM with 8 rows × 8 columns per invocation (CPU adapters, three rows on).
pub const VEC4_WIDE_KERNEL: Kernel = vec4_gemm!("gemm_vec4_wide", "gemm/gemm_b_f32.wgsl", "gemm/gemm_vec4_wide.wgsl");
/// The wide vec4 GEMM with B stored as f16.
pub const VEC4_WIDE_F16_KERNEL: Kernel = vec4_gemm!(f16 "gemm_vec4_wide_f16", "gemm/gemm_b_f16.wgsl", "gemm/gemm_vec4_wide.wgsl");
/// The vec4 and wide vec4 GEMMs with B in one buffer (`gemm_b1_*.wgsl`, binding 5 only): without
/// the switch over B's buffers, which CPU adapters pay for every load; f32 and f16 B.
pub const VEC4_ONE_B_KERNEL: Kernel = vec4_gemm!("gemm_vec4_one_b", "gemm/gemm_b1_f32.wgsl", "gemm/gemm_vec4.wgsl");
pub const VEC4_F16_ONE_B_KERNEL: Kernel = vec4_gemm!(f16 "gemm_vec4_f16_one_b", "gemm/gemm_b1_f16.wgsl", "gemm/gemm_vec4.wgsl");
pub const VEC4_WIDE_ONE_B_KERNEL: Kernel = vec4_gemm!("gemm_vec4_wide_one_b", "gemm/gemm_b1_f32.wgsl", "gemm/gemm_vec4_wide.wgsl");
pub const VEC4_WIDE_F16_ONE_B_KERNEL: Kernel =
    vec4_gemm!(f16 "gemm_vec4_wide_f16_one_b", "gemm/gemm_b1_f16.wgsl", "gemm/gemm_vec4_wide.wgsl");
/// The register-blocked GEMM with 16 rows × 16 columns per invocation (CPU adapters, large GEMMs):
/// B in up to four buffers and in one, f32 and f16 B.
pub const VEC4_WIDE16_KERNEL: Kernel = vec4_gemm!("gemm_vec4_wide16", "gemm/gemm_b_f32.wgsl", "gemm/gemm_vec4_wide16.wgsl");
pub const VEC4_WIDE16_F16_KERNEL: Kernel = vec4_gemm!(f16 "gemm_vec4_wide16_f16", "gemm/gemm_b_f16.wgsl", "gemm/gemm_vec4_wide16.wgsl");
pub const VEC4_WIDE16_ONE_B_KERNEL: Kernel = vec4_gemm!("gemm_vec4_wide16_one_b", "gemm/gemm_b1_f32.wgsl", "gemm/gemm_vec4_wide16.wgsl");
pub const VEC4_WIDE16_F16_ONE_B_KERNEL: Kernel =
    vec4_gemm!(f16 "gemm_vec4_wide16_f16_one_b", "gemm/gemm_b1_f16.wgsl", "gemm/gemm_vec4_wide16.wgsl");

/// Depths from this on, with at least one whole output tile of rows, take the 16 × 16 kernel on CPU
/// adapters: below it the epilogue of 256 outputs per invocation outweighs the loads saved.
pub const WIDE16_MIN_DEPTH: usize = 64;

/// The workgroup-memory tiled vec4 GEMM (GPUs, many rows).
pub const TILED_VEC4_KERNEL: Kernel = vec4_gemm!("gemm_tiled_vec4", "gemm/gemm_b_f32.wgsl", "gemm/gemm_tiled_vec4.wgsl");

/// The tiled vec4 GEMM with B stored as f16.
pub const TILED_VEC4_F16_KERNEL: Kernel = vec4_gemm!(f16 "gemm_tiled_vec4_f16", "gemm/gemm_b_f16.wgsl", "gemm/gemm_tiled_vec4.wgsl");

/// Row counts from this on go to the tiled vec4 kernel on GPUs, where a 64-row tile is full enough.
pub const TILED_VEC4_MIN_ROWS: usize = 64;

/// The split-K kernel with `ROWS` rows per workgroup (1, 2 or 4), B as f32 and as f16.
macro_rules! splitk_kernel {
    ($name:literal, $rows:literal) => {
        Kernel::new::<GemmParams>(
            $name,
            concat!(wgsl!("gelu/gelu_functions.wgsl", "gemm/gemm_common.wgsl", "gemm/gemm_b_f32.wgsl", "gemm/gemm_splitk.wgsl"), "\nconst ROWS: u32 = ", $rows, "u;\n"),
        )
    };
    (f16 $name:literal, $rows:literal) => {
        Kernel::new::<GemmParams>(
            $name,
            concat!(
                wgsl!(enable f16; "gelu/gelu_functions.wgsl", "gemm/gemm_common.wgsl", "gemm/gemm_b_f16.wgsl", "gemm/gemm_splitk.wgsl"),
                "\nconst ROWS: u32 = ",
                $rows,
                "u;\n"
            ),
        )
    };
}

/// The split-K kernels for 1, 2 and 4 rows per workgroup.
pub const SPLITK_KERNELS: [Kernel; 3] =
    [splitk_kernel!("gemm_splitk_r1", 1), splitk_kernel!("gemm_splitk_r2", 2), splitk_kernel!("gemm_splitk_r4", 4)];

/// The split-K kernels with B stored as f16.
pub const SPLITK_F16_KERNELS: [Kernel; 3] =
    [splitk_kernel!(f16 "gemm_splitk_f16_r1", 1), splitk_kernel!(f16 "gemm_splitk_f16_r2", 2), splitk_kernel!(f16 "gemm_splitk_f16_r4", 4)];

/// Invocations per workgroup of the split-K kernel (`SPLIT_WG` in gemm_splitk.wgsl).
pub const SPLITK_WORKGROUP: usize = 256;

/// Row counts up to this go to the split-K kernel when B can be read as vec4: a few rows per
/// expert, where reading the weights once is the whole cost.
pub const SPLITK_MAX_ROWS: usize = 16;

/// The chunk length of the canonical summation order (`KC` in gemm_common.wgsl): k-ascending fused
/// multiply-adds within each chunk of K, the chunk sums added in order. Every kernel follows it.
pub const SUM_CHUNK: usize = 32;

/// Output widths from this on take the wide vec4 kernel on CPU adapters (with more than two rows).
pub const WIDE_MIN_COLUMNS: usize = 32;

/// Row counts up to this go to the skinny kernel, where a 64-row tile would be mostly idle.
pub const SKINNY_MAX_ROWS: usize = 16;

/// Which GEMM kernel runs a `Matmul`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemmKernel {
    /// 64×64 output tiles staged through workgroup memory.
    Tiled,
    /// 4 rows × `WORKGROUP_SIZE` (64) columns per workgroup, streaming B.
    Skinny,
    /// One invocation per output: the straightforward baseline and reference.
    Naive,
    /// 8 rows × 4 columns per invocation with vec4 reads of B (needs a vec4-aligned B); the last one
    /// or two rows take the single-row path, one row at a time.
    Vec4,
    /// The vec4 kernel without its single-row path (flag bit 12): the last rows run with clamped
    /// duplicates, as before that path existed. The benchmark's baseline for M ≤ 2; never chosen.
    Vec4Blocked,
    /// The vec4 kernel with B stored as f16.
    Vec4F16,
    /// Few rows (up to 4 per workgroup, `SPLITK_MAX_ROWS` in all): K split over the workgroup's
    /// k-groups, chunk sums added in chunk order (needs a vec4-aligned B).
    SplitK,
    /// The split-K kernel with B stored as f16.
    SplitKF16,
    /// 64×64 tiles through workgroup memory, B read as vec4, K staged one 32-k chunk at a time:
    /// many rows on GPUs (needs a vec4-aligned B).
    TiledVec4,
    /// The tiled vec4 kernel with B stored as f16.
    TiledVec4F16,
    /// 8 rows × 8 columns per invocation (two vec4 of B per k): twice the vec4 kernel's FMAs per
    /// loaded value, for CPU adapters, where every lane-varying load is a gather (needs a
    /// vec4-aligned B).
    Vec4Wide,
    /// The wide vec4 kernel with B stored as f16.
    Vec4WideF16,
    /// 16 rows × 16 columns per invocation (four vec4 of B per k): four times the vec4 kernel's
    /// FMAs per loaded value, for large GEMMs on CPU adapters (needs a vec4-aligned B).
    Vec4Wide16,
    /// The 16 × 16 kernel with B stored as f16.
    Vec4Wide16F16,
}

impl GemmKernel {
    /// The kernel for `rows` output rows when B cannot be read as vec4.
    pub fn for_rows(rows: usize) -> Self {
        if rows <= SKINNY_MAX_ROWS {
            GemmKernel::Skinny
        } else {
            GemmKernel::Tiled
        }
    }

    /// The fastest kernel that can run `mm` on an adapter of type `device`. Few rows go to the
    /// split-K kernel on GPUs, which need many warps in flight to hide memory latency; a CPU adapter
    /// (lavapipe, SwiftShader), where latency hiding is free and barriers are dear, keeps the vec4
    /// kernel's barrier-free single-row path (docs/ARCHITECTURE.md, "Choosing a GEMM kernel").
    pub fn choose(mm: &Matmul, device: wgpu::DeviceType) -> Self {
        let gpu = device != wgpu::DeviceType::Cpu;
        let few_rows = gpu && mm.m <= SPLITK_MAX_ROWS && !mm.normalize_rows;
        let many_rows = gpu && mm.m >= TILED_VEC4_MIN_ROWS;
        // On a CPU adapter the vec4 kernel's single-row path serves one or two rows; from three
        // rows on, the 8×8 blocks load half as much per FMA, except on narrow outputs (16 slots'
        // logits), where they measured slower.
        let wide = !gpu && mm.m > 2 && mm.n >= WIDE_MIN_COLUMNS;
        // The 16 × 16 blocks where whole tiles of them are filled and K is long.
        let wide16 = wide && mm.k >= WIDE16_MIN_DEPTH && mm.m >= GemmKernel::Vec4Wide16.tile(mm.m, mm.n).0;
        if mm.b_f16 {
            match (few_rows, many_rows, wide16, wide) {
                (true, ..) => GemmKernel::SplitKF16,
                (_, true, ..) => GemmKernel::TiledVec4F16,
                (_, _, true, _) => GemmKernel::Vec4Wide16F16,
                (.., true) => GemmKernel::Vec4WideF16,
                _ => GemmKernel::Vec4F16,
            }
        } else if mm.vec4_b() {
            match (few_rows, many_rows, wide16, wide) {
                (true, ..) => GemmKernel::SplitK,
                (_, true, ..) => GemmKernel::TiledVec4,
                (_, _, true, _) => GemmKernel::Vec4Wide16,
                (.., true) => GemmKernel::Vec4Wide,
                _ => GemmKernel::Vec4,
            }
        } else {
            GemmKernel::for_rows(mm.m)
        }
    }

    /// Whether the kernel has a variant reading B from one buffer only (the CPU adapters' kernels).
    fn has_one_b_variant(self) -> bool {
        matches!(
            self,
            GemmKernel::Vec4
                | GemmKernel::Vec4Blocked
                | GemmKernel::Vec4F16
                | GemmKernel::Vec4Wide
                | GemmKernel::Vec4WideF16
                | GemmKernel::Vec4Wide16
                | GemmKernel::Vec4Wide16F16
        )
    }

    /// The kernel that runs an m×n output, `one_b`: its variant for B in one buffer.
    fn kernel(self, m: usize, one_b: bool) -> &'static Kernel {
        if one_b {
            match self {
                GemmKernel::Vec4 | GemmKernel::Vec4Blocked => return &VEC4_ONE_B_KERNEL,
                GemmKernel::Vec4F16 => return &VEC4_F16_ONE_B_KERNEL,
                GemmKernel::Vec4Wide => return &VEC4_WIDE_ONE_B_KERNEL,
                GemmKernel::Vec4WideF16 => return &VEC4_WIDE_F16_ONE_B_KERNEL,
                GemmKernel::Vec4Wide16 => return &VEC4_WIDE16_ONE_B_KERNEL,
                GemmKernel::Vec4Wide16F16 => return &VEC4_WIDE16_F16_ONE_B_KERNEL,
                _ => {}
            }
        }
        // The split-K kernels' rows per workgroup: 1, 2 or 4, as few as cover m.
        let rows = |m: usize| m.next_power_of_two().clamp(1, 4).trailing_zeros() as usize;
        match self {
            GemmKernel::Tiled => &KERNEL,
            GemmKernel::Skinny => &SKINNY_KERNEL,
            GemmKernel::Naive => &NAIVE_KERNEL,
            GemmKernel::Vec4 | GemmKernel::Vec4Blocked => &VEC4_KERNEL,
            GemmKernel::Vec4F16 => &VEC4_F16_KERNEL,
            GemmKernel::SplitK => &SPLITK_KERNELS[rows(m)],
            GemmKernel::SplitKF16 => &SPLITK_F16_KERNELS[rows(m)],
            GemmKernel::TiledVec4 => &TILED_VEC4_KERNEL,
            GemmKernel::TiledVec4F16 => &TILED_VEC4_F16_KERNEL,
            GemmKernel::Vec4Wide => &VEC4_WIDE_KERNEL,
            GemmKernel::Vec4WideF16 => &VEC4_WIDE_F16_KERNEL,
            GemmKernel::Vec4Wide16 => &VEC4_WIDE16_KERNEL,
            GemmKernel::Vec4Wide16F16 => &VEC4_WIDE16_F16_KERNEL,
        }
    }

    /// Whether the kernel reads B as vec4 (binding 5, vec4-aligned B).
    pub fn reads_vec4(self) -> bool {
        !matches!(self, GemmKernel::Tiled | GemmKernel::Skinny | GemmKernel::Naive)
    }

    /// Whether the kernel can fuse the router's row normalisation (`Matmul::normalize_rows`).
    pub fn normalizes_rows(self) -> bool {
        matches!(
            self,
            GemmKernel::Vec4
                | GemmKernel::Vec4Blocked
                | GemmKernel::Vec4F16
                | GemmKernel::TiledVec4
                | GemmKernel::TiledVec4F16
                | GemmKernel::Vec4Wide
                | GemmKernel::Vec4WideF16
                | GemmKernel::Vec4Wide16
                | GemmKernel::Vec4Wide16F16
        )
    }

    /// Output tile (rows, columns) of one workgroup for an m×n output.
    pub fn tile(self, m: usize, n: usize) -> (usize, usize) {
        match self {
            GemmKernel::Tiled | GemmKernel::TiledVec4 | GemmKernel::TiledVec4F16 => (64, 64),
            GemmKernel::Skinny => (4, WORKGROUP_SIZE as usize),
            GemmKernel::Naive => (1, 1),
            GemmKernel::Vec4 | GemmKernel::Vec4Blocked | GemmKernel::Vec4F16 => {
                let g = 1usize << self.column_groups_log2(n);
                (8 * (WORKGROUP_SIZE as usize / g), 4 * g)
            }
            GemmKernel::SplitK | GemmKernel::SplitKF16 => (m.next_power_of_two().clamp(1, 4), 4 << self.column_groups_log2(n)),
            GemmKernel::Vec4Wide | GemmKernel::Vec4WideF16 => {
                let g = 1usize << self.column_groups_log2(n);
                (8 * (WORKGROUP_SIZE as usize / g), 8 * g)
            }
            GemmKernel::Vec4Wide16 | GemmKernel::Vec4Wide16F16 => {
                let g = 1usize << self.column_groups_log2(n);
                (16 * (WORKGROUP_SIZE as usize / g), 16 * g)
            }
        }
    }

    /// log2 of the vec4 column lanes of a workgroup (flag bits 8..11): enough to cover n columns,
    /// at most one per invocation (vec4) or 32 (split-K, whose other lanes split K).
    fn column_groups_log2(self, n: usize) -> u32 {
        let most = if matches!(self, GemmKernel::SplitK | GemmKernel::SplitKF16) { 32 } else { WORKGROUP_SIZE as usize };
        let per_lane = match self {
            GemmKernel::Vec4Wide | GemmKernel::Vec4WideF16 => 8,
            GemmKernel::Vec4Wide16 | GemmKernel::Vec4Wide16F16 => 16,
            _ => 4,
        };
        n.div_ceil(per_lane).next_power_of_two().min(most).trailing_zeros()
    }
}

/// Where element (row r, col c) of batch z lives:
/// `offset + z·batch_stride + (r / row_group)·group_stride + (r % row_group)·row_stride
///  + (c / col_group)·col_group_stride + (c % col_group)·col_stride`.
/// Column groups (only B may have them) are the panel layout of expert weights (`MatrixView::panels`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatrixView {
    pub offset: usize,
    pub batch_stride: usize,
    pub row_group: usize,
    pub group_stride: usize,
    pub row_stride: usize,
    pub col_stride: usize,
    pub col_group: usize,
    pub col_group_stride: usize,
}

/// A group size no index reaches: one group.
const ONE_GROUP: usize = u32::MAX as usize;

/// Columns per panel of a panel-stored B (`MatrixView::panels`): eight vec4 lanes, so eight
/// neighbouring lanes read one 128-byte run per k, and one panel's k rows follow each other.
pub const PANEL: usize = 32;

impl MatrixView {
    /// The same view starting `offset` elements into its buffer.
    pub const fn at(self, offset: usize) -> Self {
        MatrixView { offset, ..self }
    }

    /// A row-major rows×cols matrix per batch entry.
    pub const fn row_major(rows: usize, cols: usize) -> Self {
        MatrixView {
            offset: 0,
            batch_stride: rows * cols,
            row_group: ONE_GROUP,
            group_stride: 0,
            row_stride: cols,
            col_stride: 1,
            col_group: ONE_GROUP,
            col_group_stride: 0,
        }
    }

    /// The transpose of a row-major rows×cols matrix (so the view is cols×rows).
    pub const fn transposed(rows: usize, cols: usize) -> Self {
        MatrixView { row_stride: 1, col_stride: cols, ..Self::row_major(rows, cols) }
    }

    /// A rows×cols matrix stored as cols / `PANEL` column panels, each a row-major rows×`PANEL`
    /// block (cols a multiple of `PANEL`): how the expert Dense kernels are uploaded
    /// (`pack_panels`), so that reading them k after k is one contiguous stream per panel.
    pub const fn panels(rows: usize, cols: usize) -> Self {
        MatrixView { row_stride: PANEL, col_group: PANEL, col_group_stride: PANEL * rows, ..Self::row_major(rows, cols) }
    }

    /// Rows in groups of `row_group` rows, each group `group_stride` apart (rows of width `cols`).
    pub const fn grouped(row_group: usize, group_stride: usize, cols: usize, batch_stride: usize) -> Self {
        MatrixView { row_group, group_stride, batch_stride, ..Self::row_major(0, cols) }
    }

    /// The element offset of (row r, col c) of batch z.
    pub fn index(&self, z: usize, r: usize, c: usize) -> usize {
        self.offset
            + z * self.batch_stride
            + (r / self.row_group) * self.group_stride
            + (r % self.row_group) * self.row_stride
            + (c / self.col_group) * self.col_group_stride
            + (c % self.col_group) * self.col_stride
    }

    /// Elements a buffer must hold for `batch` rows×cols matrices through this view: one past the
    /// last element it addresses (0 for an empty matrix). Offsets grow with z, r and c, so the last
    /// one is at the last corner.
    pub fn span(&self, rows: usize, cols: usize, batch: usize) -> usize {
        if rows == 0 || cols == 0 || batch == 0 {
            return 0;
        }
        self.index(batch - 1, rows - 1, cols - 1) + 1
    }
}

/// `batch` row-major rows×cols matrices rewritten in the panel layout of `MatrixView::panels`.
pub fn pack_panels(data: &[f32], batch: usize, rows: usize, cols: usize) -> Vec<f32> {
    let view = MatrixView::panels(rows, cols);
    let mut out = vec![0.0; data.len()];
    for z in 0..batch {
        for r in 0..rows {
            for c in 0..cols {
                out[view.index(z, r, c)] = data[(z * rows + r) * cols + c];
            }
        }
    }
    out
}

/// The nonlinearity applied after the bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    None,
    Gelu(Gelu),
}

/// One batched GEMM: for z < batch, C_z (m×n) = act(alpha · A_z (m×k) · B_z (k×n) + bias_z).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Matmul {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub batch: usize,
    pub a: MatrixView,
    pub b: MatrixView,
    pub c: MatrixView,
    pub alpha: f32,
    /// Batch stride of the bias vector (length n per batch entry) when there is a bias.
    pub bias_batch_stride: Option<usize>,
    pub activation: Activation,
    /// Add the result into C (a residual connection) instead of overwriting it.
    pub accumulate: bool,
    /// Scale each output row by 1/sqrt(‖A's row‖² + 1e-6): the router's token normalisation fused
    /// into the logits GEMM. Only the vec4 kernels do this.
    pub normalize_rows: bool,
    /// B is stored as f16 (expert kernels with `LayerOptions { f16_weights }`): only the f16 vec4
    /// kernel reads it, so the dtype decides the kernel here, in one place.
    pub b_f16: bool,
    /// B's batch entries lie in several buffers of this many entries each (experts split over
    /// storage bindings, read by one dispatch; `Matmul::op_split`); None: one buffer.
    pub b_group: Option<usize>,
}

/// B buffers one vec4 GEMM dispatch reads at most (bindings 5…8: with A, C and the bias, seven of
/// the eight storage buffers WebGPU guarantees a stage).
pub const MAX_B_BUFFERS: usize = 4;

kernel_params! {
    /// The uniform of every GEMM kernel (`gemm_common.wgsl`): sizes, the three views' strides (bs
    /// batch, rg row group, gs group, rs row, cs column, cg/cgs B's column group and its stride) and
    /// offsets, flags and the tile grid.
    pub struct GemmParams {
        m: u32,
        n: u32,
        k: u32,
        batch: u32,
        a_bs: u32,
        a_rg: u32,
        a_gs: u32,
        a_rs: u32,
        a_cs: u32,
        b_bs: u32,
        b_rs: u32,
        b_cs: u32,
        b_cg: u32,
        b_cgs: u32,
        b_group: u32,
        c_bs: u32,
        c_rg: u32,
        c_gs: u32,
        c_rs: u32,
        bias_bs: u32,
        /// Bit 0: add bias; bits 1..2: 0 none, 1 GELU tanh, 2 GELU erf; bit 3: add into C; bit 4:
        /// L2-normalise A's rows (vec4 only); bit 5: a view's groups are not a power of two; bits
        /// 8..11: log2 of the vec4 column groups; bit 12: no single-row path (vec4).
        flags: u32,
        alpha: f32,
        tiles_m: u32,
        tiles_n: u32,
        a_off: u32,
        b_off: u32,
        c_off: u32,
    }
}

impl Matmul {
    /// C [m, n] = A [m, k] · B [k, n], all row-major, one batch entry, no bias, activation or flags:
    /// the description the others are written as changes to (`Matmul { .., ..Matmul::new(m, n, k) }`).
    pub const fn new(m: usize, n: usize, k: usize) -> Matmul {
        Matmul {
            m,
            n,
            k,
            batch: 1,
            a: MatrixView::row_major(m, k),
            b: MatrixView::row_major(k, n),
            c: MatrixView::row_major(m, n),
            alpha: 1.0,
            bias_batch_stride: None,
            activation: Activation::None,
            accumulate: false,
            normalize_rows: false,
            b_f16: false,
            b_group: None,
        }
    }

    /// Floating-point operations (multiply and add counted apart).
    pub fn flops(&self) -> u64 {
        2 * (self.m * self.n * self.k * self.batch) as u64
    }

    /// Elements of A, B, C and the bias that buffers bound to this GEMM must hold (B: its first
    /// buffer, when `b_group` splits it).
    pub fn spans(&self) -> [usize; 4] {
        let bias = self.bias_batch_stride.map_or(0, |bs| (self.batch - 1) * bs + self.n);
        let b_entries = self.b_group.map_or(self.batch, |g| g.min(self.batch));
        [self.a.span(self.m, self.k, self.batch), self.b.span(self.k, self.n, b_entries), self.c.span(self.m, self.n, self.batch), bias]
    }

    /// How many buffers B's batch entries lie in (`b_group`).
    pub fn b_buffers(&self) -> usize {
        self.b_group.map_or(1, |g| self.batch.div_ceil(g.max(1)).max(1))
    }

    /// Whether a view groups rows, columns or B's buffers by a count that is neither one group nor a
    /// power of two, so that `grouped_offset` must divide (flag bit 5).
    fn divides_groups(&self) -> bool {
        let b_group = self.b_group.unwrap_or(ONE_GROUP);
        [self.a.row_group, self.c.row_group, self.b.col_group, b_group].iter().any(|&g| g != ONE_GROUP && !g.is_power_of_two())
    }

    /// Whether B can be read as vec4: unit column stride, everything else a multiple of 4.
    pub fn vec4_b(&self) -> bool {
        let b = &self.b;
        b.col_stride == 1
            && [self.n, b.row_stride, b.batch_stride, b.offset, b.col_group_stride].iter().all(|v| v.is_multiple_of(4))
            && (b.col_group == ONE_GROUP || b.col_group.is_multiple_of(4))
    }

    /// Binds the operands to the fastest kernel that can run this GEMM; `bias` must be given exactly
    /// when `bias_batch_stride` is.
    pub fn op(&self, ctx: &GpuContext, a: &wgpu::Buffer, b: &wgpu::Buffer, bias: Option<&wgpu::Buffer>, c: &wgpu::Buffer) -> Result<Op> {
        self.op_with(GemmKernel::choose(self, ctx.kernels_for()), ctx, a, b, bias, c)
    }

    /// As `op`, with B's batch entries split over `bs`, `b_group` entries per buffer (expert kernels
    /// split over storage bindings): one dispatch, on a vec4 kernel.
    pub fn op_split(
        &self,
        ctx: &GpuContext,
        a: &wgpu::Buffer,
        bs: &[&wgpu::Buffer],
        bias: Option<&wgpu::Buffer>,
        c: &wgpu::Buffer,
    ) -> Result<Op> {
        self.op_split_with(GemmKernel::choose(self, ctx.kernels_for()), ctx, a, bs, bias, c)
    }

    /// As `op`, with the kernel chosen by the caller.
    pub fn op_with(
        &self,
        kernel: GemmKernel,
        ctx: &GpuContext,
        a: &wgpu::Buffer,
        b: &wgpu::Buffer,
        bias: Option<&wgpu::Buffer>,
        c: &wgpu::Buffer,
    ) -> Result<Op> {
        self.op_split_with(kernel, ctx, a, &[b], bias, c)
    }

    /// As `op_split`, with the kernel chosen by the caller.
    pub fn op_split_with(
        &self,
        kernel: GemmKernel,
        ctx: &GpuContext,
        a: &wgpu::Buffer,
        bs: &[&wgpu::Buffer],
        bias: Option<&wgpu::Buffer>,
        c: &wgpu::Buffer,
    ) -> Result<Op> {
        if bs.len() != self.b_buffers() || bs.len() > MAX_B_BUFFERS {
            return Err(Error::Internal(format!(
                "a GEMM with B in {} buffer(s) was given {} (at most {MAX_B_BUFFERS})",
                self.b_buffers(),
                bs.len()
            )));
        }
        if bs.len() > 1 && !kernel.reads_vec4() {
            return Err(Error::Internal(format!("only the vec4 GEMMs read B from several buffers, not {kernel:?}")));
        }
        let b = bs[0];
        if self.normalize_rows && !kernel.normalizes_rows() {
            return Err(Error::Internal(format!("row normalisation is fused into the vec4 GEMMs only, not {kernel:?}")));
        }
        if self.a.col_group != ONE_GROUP || self.c.col_group != ONE_GROUP {
            return Err(Error::Internal("only B may be stored in column panels".into()));
        }
        if kernel.reads_vec4() && !self.vec4_b() {
            return Err(Error::Internal(format!("the {kernel:?} GEMM reads B as vec4, which this B's layout does not allow")));
        }
        if matches!(kernel, GemmKernel::SplitK | GemmKernel::SplitKF16) && self.m > SPLITK_MAX_ROWS {
            return Err(Error::Internal(format!("the split-K GEMM runs up to {SPLITK_MAX_ROWS} rows, not {}", self.m)));
        }
        if self.b_f16
            != matches!(
                kernel,
                GemmKernel::Vec4F16
                    | GemmKernel::SplitKF16
                    | GemmKernel::TiledVec4F16
                    | GemmKernel::Vec4WideF16
                    | GemmKernel::Vec4Wide16F16
            )
        {
            let b = if self.b_f16 { "f16" } else { "f32" };
            return Err(Error::Internal(format!("a GEMM with B stored as {b} cannot run on the {kernel:?} kernel")));
        }
        // A view past its buffer's end would read (or write) whatever lies there on some backends and
        // zeros on others: refused, naming the operand, wherever a description and its buffers meet.
        let [a_len, b_len, c_len, bias_len] = self.spans();
        let b_bytes = if self.b_f16 { 2 } else { 4 };
        // Each of B's buffers holds b_group entries, the last what is left of the batch.
        let b_need = |i: usize| b_bytes * self.b_group.map_or(b_len, |g| self.b.span(self.k, self.n, g.min(self.batch - i * g)));
        let mut needs = vec![("A".to_string(), Some(a), 4 * a_len)];
        needs
            .extend(bs.iter().enumerate().map(|(i, &b)| (if i == 0 { "B".into() } else { format!("B's buffer {i}") }, Some(b), b_need(i))));
        needs.extend([("C".to_string(), Some(c), 4 * c_len), ("bias".to_string(), bias, 4 * bias_len)]);
        for (name, buf, need) in needs {
            if let Some(buf) = buf.filter(|buf| buf.size() < need as u64) {
                return Err(Error::Internal(format!(
                    "GEMM {}×{}×{} (batch {}): {name} needs {need} bytes, its buffer holds {}",
                    self.m,
                    self.n,
                    self.k,
                    self.batch,
                    buf.size()
                )));
            }
        }
        // The bias is added only when one is given (a view with a bias stride may be run without).
        let flags = u32::from(self.bias_batch_stride.is_some() && bias.is_some())
            | match self.activation {
                Activation::None => 0,
                Activation::Gelu(Gelu::Tanh) => 1 << 1,
                Activation::Gelu(Gelu::Erf) => 2 << 1,
            }
            | (u32::from(self.accumulate) << 3)
            | (u32::from(self.normalize_rows) << 4)
            | (u32::from(self.divides_groups()) << 5)
            | (kernel.column_groups_log2(self.n) << 8)
            | (u32::from(kernel == GemmKernel::Vec4Blocked) << 12);
        let (tm, tn) = kernel.tile(self.m, self.n);
        let tiles_m = self.m.div_ceil(tm);
        let tiles_n = self.n.div_ceil(tn);
        let params = GemmParams {
            m: u32_of(self.m, "rows")?,
            n: u32_of(self.n, "columns")?,
            k: u32_of(self.k, "depth")?,
            batch: u32_of(self.batch, "batch")?,
            a_bs: u32_of(self.a.batch_stride, "A batch stride")?,
            a_rg: u32_of(self.a.row_group, "A row group")?,
            a_gs: u32_of(self.a.group_stride, "A group stride")?,
            a_rs: u32_of(self.a.row_stride, "A row stride")?,
            a_cs: u32_of(self.a.col_stride, "A column stride")?,
            b_bs: u32_of(self.b.batch_stride, "B batch stride")?,
            b_rs: u32_of(self.b.row_stride, "B row stride")?,
            b_cs: u32_of(self.b.col_stride, "B column stride")?,
            b_cg: u32_of(self.b.col_group, "B column group")?,
            b_cgs: u32_of(self.b.col_group_stride, "B column group stride")?,
            b_group: self.b_group.map_or(Ok(u32::MAX), |g| u32_of(g, "B entries per buffer"))?,
            c_bs: u32_of(self.c.batch_stride, "C batch stride")?,
            c_rg: u32_of(self.c.row_group, "C row group")?,
            c_gs: u32_of(self.c.group_stride, "C group stride")?,
            c_rs: u32_of(self.c.row_stride, "C row stride")?,
            bias_bs: u32_of(self.bias_batch_stride.unwrap_or(0), "bias batch stride")?,
            flags,
            alpha: self.alpha,
            tiles_m: u32_of(tiles_m, "row tiles")?,
            tiles_n: u32_of(tiles_n, "column tiles")?,
            a_off: u32_of(self.a.offset, "A offset")?,
            b_off: u32_of(self.b.offset, "B offset")?,
            c_off: u32_of(self.c.offset, "C offset")?,
        };
        // Without a bias the binding still needs a buffer; A is never read through it.
        let bias = bias.unwrap_or(a);
        let mut workgroups = (tiles_m * tiles_n) as u64 * self.batch as u64;
        if kernel == GemmKernel::Naive {
            workgroups = workgroups.div_ceil(WORKGROUP_SIZE as u64);
        }
        // Natively, CPU adapters get pipelines compiled for these flags (`SWITCHES` in
        // gemm_common.wgsl): they execute switched-off branches too. GPUs keep one pipeline per kernel.
        let constants = [("SWITCHES", flags & 63)];
        let one_b = kernel.reads_vec4() && bs.len() == 1 && kernel.has_one_b_variant();
        let shader = kernel.kernel(self.m, one_b);
        if one_b {
            Op::specialized(ctx, shader, &constants, &params, &[(1, a), (3, bias), (4, c), (5, b)], workgroups)
        } else if kernel.reads_vec4() {
            // Unused B bindings repeat the first buffer (never read: z stays below the split).
            let b_at = |i: usize| bs.get(i).copied().unwrap_or(b);
            let bindings = [(1, a), (3, bias), (4, c), (5, b_at(0)), (6, b_at(1)), (7, b_at(2)), (8, b_at(3))];
            Op::specialized(ctx, shader, &constants, &params, &bindings, workgroups)
        } else {
            Op::specialized(ctx, shader, &constants, &params, &[(1, a), (2, b), (3, bias), (4, c)], workgroups)
        }
    }
}
