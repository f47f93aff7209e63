//! The Soft MoE layer in f64 (docs/math.md), one function per stage, from the kernels' references.

use crate::config::SoftMoeVariant;
use crate::error::{Error, Result};
use crate::reference::{combine_softmax, dispatch_softmax, gelu, l2_normalize, matmul, rms_norm, round_bf16_f64, transpose};
use crate::tensor::Tensor;
use crate::weights::SoftMoeWeights;

/// One layer's outputs for a batch, in f64: y [b, m, d], dispatch and combine [b, m, n·p].
#[derive(Clone, Debug)]
pub struct ReferenceOutput {
    pub y: Vec<f64>,
    pub dispatch: Vec<f64>,
    pub combine: Vec<f64>,
}

/// Logits L = scale · X̂ Φ̂ for one example: x is m×d, mu is d×s (already normalised when asked).
pub fn logits(x: &[f64], mu: &[f64], scale: f64, m: usize, d: usize, s: usize) -> Vec<f64> {
    matmul(x, mu, m, d, s).into_iter().map(|v| v * scale).collect()
}

/// Slot inputs X̃ = Dᵀ X (s×d) from dispatch weights D (m×s) and the un-normalised tokens X (m×d).
pub fn slot_inputs(dispatch: &[f64], x: &[f64], m: usize, s: usize, d: usize) -> Vec<f64> {
    matmul(&transpose(dispatch, m, s), x, s, m, d)
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

/// Φ̂: mu as a d×s matrix, column-normalised when the layer normalises (in the soft-moe-pytorch
/// variant: each column RMSNorm-ed with `SlotNorm/scale`).
pub fn slot_params(w: &SoftMoeWeights) -> Vec<f64> {
    let mu: Vec<f64> = w.mu.iter().map(|&v| v as f64).collect();
    match w.variant {
        SoftMoeVariant::SoftMoePytorch => rms_norm(&mu, &f64s(&w.slot_norm_scale), w.slots(), w.d, 1, w.slots()),
        SoftMoeVariant::Vmoe if w.normalize => l2_normalize(&mu, w.slots(), w.d, 1, w.slots()),
        SoftMoeVariant::Vmoe => mu,
    }
}

/// The tokens the router reads for one example x (m×d): X̂ (L2-normalised when the layer
/// normalises) or, in the soft-moe-pytorch variant, X' = RMSNorm(X) with `Norm/scale` — which the
/// experts then read too.
pub fn router_tokens(w: &SoftMoeWeights, x: &[f64], m: usize) -> Vec<f64> {
    let d = w.d;
    match w.variant {
        SoftMoeVariant::SoftMoePytorch => rms_norm(x, &f64s(&w.norm_scale), m, d, d, 1),
        SoftMoeVariant::Vmoe if w.normalize => l2_normalize(x, m, d, d, 1),
        SoftMoeVariant::Vmoe => x.to_vec(),
    }
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&a| a as f64).collect()
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
        let xn = router_tokens(w, xe, m);
        let l = logits(&xn, &mu, w.scale as f64, m, d, s);
        let dm = dispatch_softmax(&l, m, s);
        let cm = combine_softmax(&l, m, s);
        // vmoe's Bfloat16Dispatcher rounds X before X̃ = DᵀX and Ỹ before Y = CỸ.
        let round = |v: &[f64]| -> Vec<f64> { v.iter().map(|&a| if w.dispatch_bfloat16 { round_bf16_f64(a) } else { a }).collect() };
        // vmoe dispatches the layer's input; soft-moe-pytorch the RMSNorm-ed tokens.
        let dispatched = match w.variant {
            SoftMoeVariant::Vmoe => round(xe),
            SoftMoeVariant::SoftMoePytorch => xn,
        };
        let xs = slot_inputs(&dm, &dispatched, m, s, d);
        let ys = expert_mlp(&xs, w);
        out.y.extend(combine(&cm, &round(&ys), m, s, d));
        out.dispatch.extend(dm);
        out.combine.extend(cm);
    }
    out
}

/// Checks that `x` is [b, m, d] with the layer's d, m ≥ 1 and finite values; returns (b, m).
pub fn check_input(layer_d: usize, x: &Tensor) -> Result<(usize, usize)> {
    let [b, m, d] = x.shape[..] else {
        return Err(Error::input("x", format!("shape [batch, tokens, {layer_d}]"), format!("shape {:?}", x.shape)));
    };
    if d != layer_d {
        return Err(Error::input("x", format!("d = {layer_d} (the layer's)"), format!("d = {d} (shape {:?})", x.shape)));
    }
    if m == 0 {
        return Err(Error::input(
            "x",
            "at least one token per example (the softmax over tokens needs one)",
            format!("shape {:?}", x.shape),
        ));
    }
    if x.data.len() != b * m * d {
        return Err(Error::input("x", format!("{} values (shape {:?})", b * m * d, x.shape), format!("{} values", x.data.len())));
    }
    if let Some(i) = x.data.iter().position(|v| !v.is_finite()) {
        return Err(Error::input("x", "finite values", format!("a non-finite value at flat index {i}")));
    }
    Ok((b, m))
}
