//! The GEMM engine in f64: plain loops over a `Matmul`'s views, and the dense products and GELU the
//! f64 layers are written with.

use super::{Activation, Matmul, MatrixView, SUM_CHUNK};
use crate::config::Gelu;
use crate::kernels::l2_normalize::reference::NORM_EPS;

/// C = act(alpha·Â·B + bias) as `mm` describes it (Â: A's rows L2-normalised when
/// `mm.normalize_rows`, else A), into a zeroed `c_len`-long C (elements its view does not cover stay
/// 0); with `mm.accumulate`, onto zeros as well.
pub fn gemm(mm: &Matmul, a: &[f32], b: &[f32], bias: Option<&[f32]>, c_len: usize) -> Vec<f64> {
    let at = |v: &MatrixView, z: usize, row: usize, col: usize| v.index(z, row, col);
    let mut c = vec![0.0; c_len];
    for z in 0..mm.batch {
        for i in 0..mm.m {
            for j in 0..mm.n {
                let a_row = |t: usize| a[at(&mm.a, z, i, t)] as f64;
                let inv_norm =
                    if mm.normalize_rows { 1.0 / ((0..mm.k).map(|t| a_row(t) * a_row(t)).sum::<f64>() + NORM_EPS).sqrt() } else { 1.0 };
                let acc: f64 = (0..mm.k).map(|t| a_row(t) * b[at(&mm.b, z, t, j)] as f64).sum();
                let mut v = mm.alpha as f64 * acc * inv_norm;
                if let (Some(bias), Some(bs)) = (bias, mm.bias_batch_stride) {
                    v += bias[z * bs + j] as f64;
                }
                if let Activation::Gelu(g) = mm.activation {
                    v = gelu(v, g);
                }
                c[at(&mm.c, z, i, j)] = v;
            }
        }
    }
    c
}

/// C = A·B in f32 exactly as the GPU kernels sum it (the canonical order of gemm_common.wgsl: fused
/// multiply-adds k-ascending within chunks of `SUM_CHUNK`, chunk sums added in order onto 0): the bits
/// every kernel must give for a plain GEMM (alpha 1, no bias, activation or flags), into a zeroed
/// `c_len`-long C. WGSL lets `fma` round once or twice: `fused` picks which (lavapipe rounds twice).
pub fn gemm_canonical_f32(mm: &Matmul, a: &[f32], b: &[f32], c_len: usize, fused: bool) -> Vec<f32> {
    let fma = |x: f32, y: f32, acc: f32| if fused { x.mul_add(y, acc) } else { x * y + acc };
    let at = |v: &MatrixView, z: usize, row: usize, col: usize| v.index(z, row, col);
    let mut c = vec![0.0f32; c_len];
    for z in 0..mm.batch {
        for i in 0..mm.m {
            for j in 0..mm.n {
                let mut total = 0.0f32;
                for k0 in (0..mm.k).step_by(SUM_CHUNK) {
                    let chunk =
                        (k0..(k0 + SUM_CHUNK).min(mm.k)).fold(0.0f32, |acc, t| fma(a[at(&mm.a, z, i, t)], b[at(&mm.b, z, t, j)], acc));
                    total += chunk;
                }
                c[at(&mm.c, z, i, j)] = total;
            }
        }
    }
    c
}

/// Row-major `a` (m×k) times `b` (k×n).
pub fn matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for t in 0..k {
            let av = a[i * k + t];
            for j in 0..n {
                c[i * n + j] += av * b[t * n + j];
            }
        }
    }
    c
}

/// Transpose of row-major `a` (rows×cols).
pub fn transpose(a: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut t = vec![0.0; a.len()];
    for i in 0..rows {
        for j in 0..cols {
            t[j * rows + i] = a[i * cols + j];
        }
    }
    t
}

/// x·W + bias for `rows` rows of x [rows, k]; W [k, n].
pub fn dense(x: &[f64], rows: usize, k: usize, n: usize, w: &[f32], bias: &[f32]) -> Vec<f64> {
    let mut y = Vec::with_capacity(rows * n);
    for r in 0..rows {
        for j in 0..n {
            y.push(bias[j] as f64 + (0..k).map(|t| x[r * k + t] * w[t * n + j] as f64).sum::<f64>());
        }
    }
    y
}

/// erf to about 1e-15: Taylor series near 0, Lentz-free continued fraction for erfc in the tails.
pub fn erf(x: f64) -> f64 {
    let a = x.abs();
    let r = if a < 2.5 {
        let (mut term, mut sum, mut n) = (a, a, 0.0f64);
        while term.abs() > 1e-17 * sum.abs() {
            n += 1.0;
            term *= -a * a / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // erfc(a) = exp(-a²)/√π · 1/(a + (1/2)/(a + 1/(a + (3/2)/(a + 2/(a + …))))), evaluated bottom-up.
        let mut frac = a;
        for k in (1..=80).rev() {
            frac = a + (k as f64 / 2.0) / frac;
        }
        1.0 - (-a * a).exp() / std::f64::consts::PI.sqrt() / frac
    };
    r.copysign(x)
}

/// GELU, tanh approximation (Flax `nn.gelu(approximate=True)`) or exact.
pub fn gelu(x: f64, kind: Gelu) -> f64 {
    match kind {
        Gelu::Tanh => {
            let c = (2.0 / std::f64::consts::PI).sqrt();
            0.5 * x * (1.0 + (c * (x + 0.044715 * x * x * x)).tanh())
        }
        Gelu::Erf => 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)),
    }
}

#[cfg(test)]
mod tests {
    use super::{erf, gelu};
    use crate::config::Gelu;

    #[test]
    fn erf_matches_known_values() {
        // Values from Abramowitz & Stegun table 7.1.
        for (x, want) in [
            (0.5, 0.5204998778130465),
            (1.0, 0.8427007929497149),
            (2.0, 0.9953222650189527),
            (3.0, 0.9999779095030014),
            (-1.5, -0.9661051464753108),
        ] {
            assert!((erf(x) - want).abs() < 1e-14, "erf({x}) = {}", erf(x));
        }
    }

    #[test]
    fn gelu_tanh_and_erf_differ_by_the_known_small_amount() {
        let worst = (-600..600).map(|i| i as f64 / 100.0).map(|x| (gelu(x, Gelu::Tanh) - gelu(x, Gelu::Erf)).abs()).fold(0.0, f64::max);
        assert!(worst > 1e-4 && worst < 1e-3, "{worst}");
    }
}
