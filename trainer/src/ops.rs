//! Fused CPU ops with hand-written backward passes: tanh GELU, softmax over the last dim,
//! LayerNorm's standardisation and L2 normalisation. Built from candle primitives these cost a
//! dozen tensor passes (and allocations) each way; fused they cost one, which makes training
//! about twice as fast at the model's small sizes.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Error, Layout, Result, Shape, Tensor};

/// The f32 values of a contiguous tensor.
fn values<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    let (a, b) = l.contiguous_offsets().ok_or_else(|| Error::Msg("fused op needs a contiguous input".into()))?;
    Ok(&s.as_slice::<f32>()?[a..b])
}

/// Length of the last dim (rows are contiguous runs of it).
fn row_len(l: &Layout) -> Result<usize> {
    l.dims().last().copied().filter(|&n| n > 0).ok_or_else(|| Error::Msg("fused op needs a non-empty last dim".into()))
}

/// Apply `f(row_in_a, row_in_b, row_out)` to each row of two same-shaped inputs.
fn map_rows2(
    s1: &CpuStorage,
    l1: &Layout,
    s2: &CpuStorage,
    l2: &Layout,
    f: impl Fn(&[f32], &[f32], &mut [f32]),
) -> Result<(CpuStorage, Shape)> {
    if l1.dims() != l2.dims() {
        return Err(Error::Msg(format!("fused backward: shapes {:?} and {:?} differ", l1.dims(), l2.dims())));
    }
    let (a, b, n) = (values(s1, l1)?, values(s2, l2)?, row_len(l1)?);
    let mut out = vec![0f32; a.len()];
    for ((ra, rb), ro) in a.chunks_exact(n).zip(b.chunks_exact(n)).zip(out.chunks_exact_mut(n)) {
        f(ra, rb, ro);
    }
    Ok((CpuStorage::F32(out), l1.shape().clone()))
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// tanh from one `exp` (libm's tanhf goes through expm1f and was an eighth of training time);
/// absolute error below 1e-7, clamped where tanh is ±1 in f32.
fn tanh(u: f32) -> f32 {
    let e = (2.0 * u.clamp(-10.0, 10.0)).exp();
    (e - 1.0) / (e + 1.0)
}
const GELU_C: f32 = 0.044_715;

/// GELU, tanh approximation (Flax's default, as in SPEC §1).
struct Gelu;
/// d GELU(x) / dx times the incoming gradient.
struct GeluGrad;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "fused-gelu"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = values(s, l)?.iter().map(|&v| 0.5 * v * (1.0 + tanh(SQRT_2_OVER_PI * v * (1.0 + GELU_C * v * v)))).collect();
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(&grad.contiguous()?, &GeluGrad)?))
    }
}

impl CustomOp2 for GeluGrad {
    fn name(&self) -> &'static str {
        "fused-gelu-grad"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        map_rows2(s1, l1, s2, l2, |x, g, o| {
            for ((&v, &g), o) in x.iter().zip(g).zip(o) {
                let t = tanh(SQRT_2_OVER_PI * v * (1.0 + GELU_C * v * v));
                let dt = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * v * v);
                *o = g * (0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * dt);
            }
        })
    }
}

/// Softmax over the last dim (the max is subtracted).
struct Softmax;
/// y ⊙ (g − Σ g⊙y): the softmax backward from its output y.
struct SoftmaxGrad;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "fused-softmax"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, n) = (values(s, l)?, row_len(l)?);
        let mut out = vec![0f32; x.len()];
        for (r, o) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
            let max = r.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
            let mut sum = 0f32;
            for (&v, o) in r.iter().zip(o.iter_mut()) {
                *o = (v - max).exp();
                sum += *o;
            }
            let inv = 1.0 / sum;
            o.iter_mut().for_each(|v| *v *= inv);
        }
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(res.apply_op2_no_bwd(&grad.contiguous()?, &SoftmaxGrad)?))
    }
}

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "fused-softmax-grad"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        map_rows2(s1, l1, s2, l2, |y, g, o| {
            let dot: f32 = y.iter().zip(g).map(|(a, b)| a * b).sum();
            for ((&y, &g), o) in y.iter().zip(g).zip(o) {
                *o = y * (g - dot);
            }
        })
    }
}

/// (x − mean) / sqrt(var + eps) over the last dim (biased variance): LayerNorm without its affine.
struct Standardize(f32);
/// Its backward, recomputing mean and variance from x: (g − mean g − y·mean(g⊙y)) / σ.
struct StandardizeGrad(f32);

fn mean_inv_std(r: &[f32], eps: f32) -> (f32, f32) {
    let n = r.len() as f32;
    let mean = r.iter().sum::<f32>() / n;
    let var = r.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + eps).sqrt())
}

impl CustomOp1 for Standardize {
    fn name(&self) -> &'static str {
        "fused-standardize"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, n) = (values(s, l)?, row_len(l)?);
        let mut out = vec![0f32; x.len()];
        for (r, o) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
            let (mean, inv) = mean_inv_std(r, self.0);
            for (&v, o) in r.iter().zip(o) {
                *o = (v - mean) * inv;
            }
        }
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(&grad.contiguous()?, &StandardizeGrad(self.0))?))
    }
}

impl CustomOp2 for StandardizeGrad {
    fn name(&self) -> &'static str {
        "fused-standardize-grad"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let eps = self.0;
        map_rows2(s1, l1, s2, l2, |x, g, o| {
            let n = x.len() as f32;
            let (mean, inv) = mean_inv_std(x, eps);
            let g_mean = g.iter().sum::<f32>() / n;
            let gy_mean = x.iter().zip(g).map(|(&v, &g)| (v - mean) * inv * g).sum::<f32>() / n;
            for ((&v, &g), o) in x.iter().zip(g).zip(o) {
                *o = inv * (g - g_mean - (v - mean) * inv * gy_mean);
            }
        })
    }
}

/// x / sqrt(‖x‖² + eps) over the last dim (SPEC §1: eps inside the sqrt).
struct L2Normalize(f32);
/// Its backward: r (g − y (y·g)), r = 1/sqrt(‖x‖² + eps), y = r x.
struct L2NormalizeGrad(f32);

impl CustomOp1 for L2Normalize {
    fn name(&self) -> &'static str {
        "fused-l2-normalize"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, n) = (values(s, l)?, row_len(l)?);
        let mut out = vec![0f32; x.len()];
        for (r, o) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
            let inv = 1.0 / (r.iter().map(|v| v * v).sum::<f32>() + self.0).sqrt();
            for (&v, o) in r.iter().zip(o) {
                *o = v * inv;
            }
        }
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(arg.apply_op2_no_bwd(&grad.contiguous()?, &L2NormalizeGrad(self.0))?))
    }
}

impl CustomOp2 for L2NormalizeGrad {
    fn name(&self) -> &'static str {
        "fused-l2-normalize-grad"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let eps = self.0;
        map_rows2(s1, l1, s2, l2, |x, g, o| {
            let inv = 1.0 / (x.iter().map(|v| v * v).sum::<f32>() + eps).sqrt();
            let yg = x.iter().zip(g).map(|(&v, &g)| v * inv * g).sum::<f32>();
            for ((&v, &g), o) in x.iter().zip(g).zip(o) {
                *o = inv * (g - v * inv * yg);
            }
        })
    }
}

/// x [G, R, N] + bias [G, N] broadcast over R. candle's broadcast_add back-propagates to the
/// bias with a strided reduction that cost more than the matmuls; this sums rows in one pass.
struct AddBias {
    groups: usize,
    rows: usize,
}
/// Σ over R of g [G, R, N] → [G, N].
struct SumRows {
    groups: usize,
    rows: usize,
}

impl CustomOp2 for AddBias {
    fn name(&self) -> &'static str {
        "fused-add-bias"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (x, b) = (values(s1, l1)?, values(s2, l2)?);
        let n = b.len() / self.groups;
        let mut out = x.to_vec();
        for (gi, group) in out.chunks_exact_mut(self.rows * n).enumerate() {
            let bias = &b[gi * n..(gi + 1) * n];
            for row in group.chunks_exact_mut(n) {
                row.iter_mut().zip(bias).for_each(|(o, &b)| *o += b);
            }
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
    fn bwd(&self, _x: &Tensor, bias: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let db = grad.contiguous()?.apply_op1_no_bwd(&SumRows { groups: self.groups, rows: self.rows })?.reshape(bias.shape())?;
        Ok((Some(grad.clone()), Some(db)))
    }
}

impl CustomOp1 for SumRows {
    fn name(&self) -> &'static str {
        "fused-sum-rows"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let g = values(s, l)?;
        let n = g.len() / (self.groups * self.rows);
        let mut out = vec![0f32; self.groups * n];
        for (group, acc) in g.chunks_exact(self.rows * n).zip(out.chunks_exact_mut(n)) {
            for row in group.chunks_exact(n) {
                acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v);
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((self.groups, n))))
    }
}

/// y [R, N] ⊙ scale [N] + bias [N]: LayerNorm's affine part, with one-pass parameter gradients.
struct ScaleShift;
/// Σ over rows of g ⊙ y → [N].
struct SumRowsOfProduct;

impl CustomOp3 for ScaleShift {
    fn name(&self) -> &'static str {
        "fused-scale-shift"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (y, scale, bias) = (values(s1, l1)?, values(s2, l2)?, values(s3, l3)?);
        let mut out = vec![0f32; y.len()];
        for (r, o) in y.chunks_exact(scale.len()).zip(out.chunks_exact_mut(scale.len())) {
            for (((o, &v), &s), &b) in o.iter_mut().zip(r).zip(scale).zip(bias) {
                *o = v * s + b;
            }
        }
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
    fn bwd(
        &self,
        y: &Tensor,
        scale: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let n = scale.elem_count();
        let rows = grad.elem_count() / n;
        let dy = grad.broadcast_mul(scale)?;
        let ds = y.apply_op2_no_bwd(&grad, &SumRowsOfProduct)?.reshape(scale.shape())?;
        let db = grad.apply_op1_no_bwd(&SumRows { groups: 1, rows })?.reshape(bias.shape())?;
        Ok((Some(dy), Some(ds), Some(db)))
    }
}

impl CustomOp2 for SumRowsOfProduct {
    fn name(&self) -> &'static str {
        "fused-sum-rows-of-product"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let (y, g, n) = (values(s1, l1)?, values(s2, l2)?, row_len(l1)?);
        let mut out = vec![0f32; n];
        for (ry, rg) in y.chunks_exact(n).zip(g.chunks_exact(n)) {
            for ((a, &v), &g) in out.iter_mut().zip(ry).zip(rg) {
                *a += v * g;
            }
        }
        Ok((CpuStorage::F32(out), Shape::from(n)))
    }
}

/// x + s_b · y per image b (x, y [B, ...], s [B]): a residual branch kept, rescaled or dropped per
/// image (stochastic depth). The keep factors are data, not parameters: they get no gradient.
struct ScaledResidual;
/// g_b · s_b per image: the branch's gradient.
struct ScaleImages;

/// Applies `f(image's values, its factor, output)` per image (the first dim) of a [B, ...] tensor.
fn per_image(s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout, mut f: impl FnMut(usize, f32, &mut [f32])) -> Result<Vec<f32>> {
    let (v, k) = (values(s1, l1)?, values(s2, l2)?);
    if k.is_empty() || v.len() % k.len() != 0 {
        return Err(Error::Msg(format!("per-image op: {} values for {} images", v.len(), k.len())));
    }
    let per = v.len() / k.len();
    let mut out = v.to_vec();
    for (b, chunk) in out.chunks_exact_mut(per).enumerate() {
        f(b * per, k[b], chunk);
    }
    Ok(out)
}

impl CustomOp3 for ScaledResidual {
    fn name(&self) -> &'static str {
        "fused-scaled-residual"
    }
    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        if l1.dims() != l2.dims() {
            return Err(Error::Msg(format!("scaled residual: shapes {:?} and {:?} differ", l1.dims(), l2.dims())));
        }
        let y = values(s2, l2)?;
        let out = per_image(s1, l1, s3, l3, |at, k, x| x.iter_mut().zip(&y[at..]).for_each(|(x, &v)| *x += k * v))?;
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
    fn bwd(
        &self,
        _x: &Tensor,
        _y: &Tensor,
        keep: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dy = grad.contiguous()?.apply_op2_no_bwd(keep, &ScaleImages)?;
        Ok((Some(grad.clone()), Some(dy), None))
    }
}

impl CustomOp2 for ScaleImages {
    fn name(&self) -> &'static str {
        "fused-scale-images"
    }
    fn cpu_fwd(&self, s1: &CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<(CpuStorage, Shape)> {
        let out = per_image(s1, l1, s2, l2, |_, k, g| g.iter_mut().for_each(|v| *v *= k))?;
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }
}

/// x + keep_b · y per image b; `keep` [B] holds 0 (branch dropped) or 1/(1 − rate).
pub fn scaled_residual(x: &Tensor, y: &Tensor, keep: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op3(&y.contiguous()?, &keep.contiguous()?, ScaledResidual)
}

/// x + bias broadcast over rows: x is [G, R, N] as laid out, bias is [G, N] (any shape with G·N
/// elements); the result has x's shape.
pub fn add_bias(x: &Tensor, bias: &Tensor, groups: usize) -> Result<Tensor> {
    let per_group = bias.elem_count() / groups;
    let rows = x.elem_count() / (groups * per_group);
    if groups * rows * per_group != x.elem_count() || groups * per_group != bias.elem_count() {
        return Err(Error::Msg(format!("add_bias: {:?} does not split into {groups} groups of rows of {:?}", x.dims(), bias.dims())));
    }
    x.contiguous()?.apply_op2(&bias.contiguous()?, AddBias { groups, rows })
}

/// y ⊙ scale + bias over the last dim of y (scale and bias have y's last dim's length).
pub fn scale_shift(y: &Tensor, scale: &Tensor, bias: &Tensor) -> Result<Tensor> {
    y.contiguous()?.apply_op3(&scale.contiguous()?, &bias.contiguous()?, ScaleShift)
}

pub fn gelu(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Gelu)
}

pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Softmax)
}

pub fn standardize_last_dim(x: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Standardize(eps as f32))
}

pub fn l2_normalize_last_dim(x: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op1(L2Normalize(eps as f32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{layer_norm_reference, softmax, Rng};
    use candle_core::{Device, Var};

    fn random(shape: &[usize], seed: u64, scale: f64) -> Tensor {
        let mut rng = Rng::new(seed);
        let n: usize = shape.iter().product();
        Tensor::from_vec((0..n).map(|_| (rng.normal() * scale) as f32).collect::<Vec<_>>(), shape, &Device::Cpu).unwrap()
    }

    /// The fused op and its primitive-built reference agree on the value and on the gradient
    /// of a random linear functional of the output.
    fn check(name: &str, fused: impl Fn(&Tensor) -> Result<Tensor>, reference: impl Fn(&Tensor) -> Result<Tensor>) {
        for (k, shape) in [vec![3usize, 7], vec![2, 5, 49], vec![4, 1], vec![1, 64], vec![2, 3, 16, 33]].iter().enumerate() {
            let x = Var::from_tensor(&random(shape, 10 + k as u64, 1.5)).unwrap();
            let w = random(shape, 100 + k as u64, 1.0);
            let (yf, yr) = (fused(x.as_tensor()).unwrap(), reference(x.as_tensor()).unwrap());
            let dy = (&yf - &yr).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
            assert!(dy < 2e-6, "{name} {shape:?}: forward differs by {dy}");
            let gf = (yf * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let gr = (yr * &w).unwrap().sum_all().unwrap().backward().unwrap();
            let (gf, gr) = (gf.get(x.as_tensor()).unwrap(), gr.get(x.as_tensor()).unwrap());
            let scale = gr.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap().max(1.0);
            let dg = (gf - gr).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
            assert!(dg < 1e-5 * scale, "{name} {shape:?}: gradient differs by {dg} (scale {scale})");
        }
    }

    #[test]
    fn gelu_matches_candle() {
        check("gelu", gelu, |x| x.gelu());
    }

    #[test]
    fn softmax_matches_primitives() {
        check("softmax", softmax_last_dim, |x| softmax(x, x.rank() - 1));
    }

    #[test]
    fn standardize_matches_primitives() {
        check(
            "standardize",
            |x| standardize_last_dim(x, 1e-6),
            |x| {
                let d = *x.dims().last().unwrap();
                let ones = Tensor::ones(d, candle_core::DType::F32, &Device::Cpu)?;
                layer_norm_reference(x, &ones, &ones.zeros_like()?, 1e-6)
            },
        );
    }

    #[test]
    fn l2_normalize_matches_primitives() {
        check("l2", |x| l2_normalize_last_dim(x, 1e-6), |x| x.broadcast_div(&(x.sqr()?.sum_keepdim(x.rank() - 1)? + 1e-6)?.sqrt()?));
    }

    /// Gradients of Σ w ⊙ f(x, p) with respect to x and to p, fused against primitives.
    fn check_param_grads(
        name: &str,
        x_shape: &[usize],
        p_shape: &[usize],
        fused: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
        reference: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
    ) {
        let x = Var::from_tensor(&random(x_shape, 1, 1.0)).unwrap();
        let p = Var::from_tensor(&random(p_shape, 2, 1.0)).unwrap();
        let w = random(x_shape, 3, 1.0);
        let yf = fused(x.as_tensor(), p.as_tensor()).unwrap();
        let yr = reference(x.as_tensor(), p.as_tensor()).unwrap();
        let max = |t: Tensor| t.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        assert!(max((&yf - &yr).unwrap()) < 1e-6, "{name}: forward differs");
        let gf = (yf * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let gr = (yr * &w).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&x, &p] {
            let (a, b) = (gf.get(v.as_tensor()).unwrap(), gr.get(v.as_tensor()).unwrap());
            assert_eq!(a.dims(), b.dims(), "{name}: gradient shape");
            let d = max((a - b).unwrap());
            assert!(d < 1e-4, "{name}: gradient differs by {d}");
        }
    }

    #[test]
    fn add_bias_matches_broadcast_add() {
        check_param_grads("bias", &[37, 19], &[19], |x, b| add_bias(x, b, 1), |x, b| x.broadcast_add(b));
        check_param_grads("grouped", &[3, 5, 7], &[3, 7], |x, b| add_bias(x, b, 3), |x, b| x.broadcast_add(&b.reshape((3, 1, 7))?));
        check_param_grads("posemb", &[4, 9, 6], &[1, 9, 6], |x, b| add_bias(x, b, 1), |x, b| x.broadcast_add(b));
    }

    #[test]
    fn add_bias_rejects_mismatched_shapes() {
        let x = random(&[4, 5], 1, 1.0);
        assert!(add_bias(&x, &random(&[3], 2, 1.0), 1).is_err());
        assert!(add_bias(&x, &random(&[5], 2, 1.0), 2).is_err());
    }

    #[test]
    fn scale_shift_matches_broadcast_ops() {
        let bias = random(&[13], 9, 1.0);
        let b2 = bias.clone();
        check_param_grads(
            "scale",
            &[2, 21, 13],
            &[13],
            move |y, s| scale_shift(y, s, &bias),
            move |y, s| y.broadcast_mul(s)?.broadcast_add(&b2),
        );
        let scale = random(&[13], 8, 1.0);
        let s2 = scale.clone();
        check_param_grads(
            "shift",
            &[2, 21, 13],
            &[13],
            move |y, b| scale_shift(y, &scale, b),
            move |y, b| y.broadcast_mul(&s2)?.broadcast_add(b),
        );
    }

    #[test]
    fn non_contiguous_inputs_are_made_contiguous() {
        let x = random(&[3, 5], 7, 1.0).t().unwrap();
        let a = softmax_last_dim(&x).unwrap().to_vec2::<f32>().unwrap();
        let b = softmax(&x.contiguous().unwrap(), 1).unwrap().to_vec2::<f32>().unwrap();
        for (ra, rb) in a.iter().zip(&b) {
            for (u, v) in ra.iter().zip(rb) {
                assert!((u - v).abs() < 1e-6);
            }
        }
    }
}
