//! Soft MoE in f64, one function per GPU kernel (SPEC §1).

use crate::config::Gelu;
use crate::error::{Error, Result};
use crate::tensor::Tensor;
use crate::weights::SoftMoeWeights;

/// The epsilon inside the square root of the L2 normalisation (vmoe's value).
pub const NORM_EPS: f64 = 1e-6;

/// One layer's outputs for a batch, in f64: y [b, m, d], dispatch and combine [b, m, n·p].
#[derive(Clone, Debug)]
pub struct ReferenceOutput {
    pub y: Vec<f64>,
    pub dispatch: Vec<f64>,
    pub combine: Vec<f64>,
}

/// `v · 1/sqrt(‖v‖² + eps)` for each of `count` vectors of `len` values, laid out with the given strides.
pub fn l2_normalize(v: &[f64], count: usize, len: usize, vec_stride: usize, elem_stride: usize) -> Vec<f64> {
    let mut out = v.to_vec();
    for c in 0..count {
        let idx = |k: usize| c * vec_stride + k * elem_stride;
        let ss: f64 = (0..len).map(|k| v[idx(k)] * v[idx(k)]).sum();
        let inv = 1.0 / (ss + NORM_EPS).sqrt();
        for k in 0..len {
            out[idx(k)] = v[idx(k)] * inv;
        }
    }
    out
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

/// Logits L = scale · X̂ Φ̂ for one example: x is m×d, mu is d×s (already normalised when asked).
pub fn logits(x: &[f64], mu: &[f64], scale: f64, m: usize, d: usize, s: usize) -> Vec<f64> {
    matmul(x, mu, m, d, s).into_iter().map(|v| v * scale).collect()
}

/// Dispatch weights: softmax over tokens (the rows of the m×s logits), per slot.
pub fn dispatch_softmax(l: &[f64], m: usize, s: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * s];
    for j in 0..s {
        let max = (0..m).map(|i| l[i * s + j]).fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = (0..m).map(|i| (l[i * s + j] - max).exp()).sum();
        for i in 0..m {
            out[i * s + j] = (l[i * s + j] - max).exp() / sum;
        }
    }
    out
}

/// Combine weights: softmax over slots (the columns of the m×s logits), per token.
pub fn combine_softmax(l: &[f64], m: usize, s: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * s];
    for i in 0..m {
        let row = &l[i * s..(i + 1) * s];
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = row.iter().map(|v| (v - max).exp()).sum();
        for j in 0..s {
            out[i * s + j] = (row[j] - max).exp() / sum;
        }
    }
    out
}

/// Slot inputs X̃ = Dᵀ X (s×d) from dispatch weights D (m×s) and the un-normalised tokens X (m×d).
pub fn slot_inputs(dispatch: &[f64], x: &[f64], m: usize, s: usize, d: usize) -> Vec<f64> {
    matmul(&transpose(dispatch, m, s), x, s, m, d)
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

/// Expert MLPs: slot j of the s×d slot inputs goes through expert ⌊j/p⌋ (Dense → GELU → Dense).
pub fn expert_mlp(xs: &[f64], w: &SoftMoeWeights) -> Vec<f64> {
    let (d, p, h) = (w.d, w.p, w.h);
    let mut out = vec![0.0; w.slots() * d];
    for j in 0..w.slots() {
        let e = j / p;
        let w0 = &w.w0[e * d * h..(e + 1) * d * h];
        let w1 = &w.w1[e * h * d..(e + 1) * h * d];
        let hidden: Vec<f64> = (0..h)
            .map(|c| {
                let z = w.b0[e * h + c] as f64 + (0..d).map(|k| xs[j * d + k] * w0[k * h + c] as f64).sum::<f64>();
                gelu(z, w.gelu)
            })
            .collect();
        for c in 0..d {
            out[j * d + c] = w.b1[e * d + c] as f64 + (0..h).map(|k| hidden[k] * w1[k * d + c] as f64).sum::<f64>();
        }
    }
    out
}

/// Output Y = C Ỹ (m×d) from combine weights C (m×s) and expert outputs Ỹ (s×d).
pub fn combine(c: &[f64], ys: &[f64], m: usize, s: usize, d: usize) -> Vec<f64> {
    matmul(c, ys, m, s, d)
}

/// Φ̂: mu as a d×s matrix, column-normalised when the layer normalises.
pub fn slot_params(w: &SoftMoeWeights) -> Vec<f64> {
    let mu: Vec<f64> = w.mu.iter().map(|&v| v as f64).collect();
    if w.normalize {
        l2_normalize(&mu, w.slots(), w.d, 1, w.slots())
    } else {
        mu
    }
}

/// The whole layer for a batch `x` [b, m, d]; each example is one group.
pub fn soft_moe_forward(w: &SoftMoeWeights, x: &Tensor) -> Result<ReferenceOutput> {
    let (b, m) = check_input(w.d, x)?;
    let x: Vec<f64> = x.data.iter().map(|&v| v as f64).collect();
    Ok(soft_moe_f64(w, &x, b, m))
}

/// The layer on f64 input x [b, m, d] (already checked).
pub fn soft_moe_f64(w: &SoftMoeWeights, x: &[f64], b: usize, m: usize) -> ReferenceOutput {
    let (d, s) = (w.d, w.slots());
    let mu = slot_params(w);
    let mut out = ReferenceOutput {
        y: Vec::with_capacity(b * m * d),
        dispatch: Vec::with_capacity(b * m * s),
        combine: Vec::with_capacity(b * m * s),
    };
    for xe in x.chunks(m * d).take(b) {
        let xn = if w.normalize { l2_normalize(xe, m, d, d, 1) } else { xe.to_vec() };
        let l = logits(&xn, &mu, w.scale as f64, m, d, s);
        let dm = dispatch_softmax(&l, m, s);
        let cm = combine_softmax(&l, m, s);
        let xs = slot_inputs(&dm, xe, m, s, d);
        let ys = expert_mlp(&xs, w);
        out.y.extend(combine(&cm, &ys, m, s, d));
        out.dispatch.extend(dm);
        out.combine.extend(cm);
    }
    out
}

/// Checks that `x` is [b, m, d] with the layer's d, m ≥ 1 and finite values; returns (b, m).
pub fn check_input(layer_d: usize, x: &Tensor) -> Result<(usize, usize)> {
    let [b, m, d] = x.shape[..] else {
        return Err(Error::Input(format!("x has shape {:?}, expected [batch, tokens, {layer_d}]", x.shape)));
    };
    if d != layer_d {
        return Err(Error::Input(format!("x has d = {d} but the layer has d = {layer_d}")));
    }
    if m == 0 {
        return Err(Error::Input("x has 0 tokens per example; the softmax over tokens needs at least one".into()));
    }
    if x.data.len() != b * m * d {
        return Err(Error::Input(format!("x holds {} values, shape {:?} needs {}", x.data.len(), x.shape, b * m * d)));
    }
    if let Some(i) = x.data.iter().position(|v| !v.is_finite()) {
        return Err(Error::Input(format!("x holds a non-finite value at flat index {i}")));
    }
    Ok((b, m))
}

#[cfg(test)]
mod tests {
    use super::*;

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
