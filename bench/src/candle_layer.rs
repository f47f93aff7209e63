//! The Soft MoE layer written with candle's tensor ops on the CPU: what a Rust user without a GPU
//! would write. Same math as SPEC §1, f32.

use candle_core::{DType, Device, Result, Tensor, D};
use softmoe::{Gelu, SoftMoeWeights};

pub struct CandleSoftMoe {
    mu: Tensor, // [d, s], normalised when the layer normalises
    scale: f64,
    w0: Tensor, // [n, d, h]
    b0: Tensor, // [n, 1, h]
    w1: Tensor, // [n, h, d]
    b1: Tensor, // [n, 1, d]
    n: usize,
    p: usize,
    gelu: Gelu,
    normalize: bool,
}

fn l2_normalize(x: &Tensor, dim: usize) -> Result<Tensor> {
    let inv = (x.sqr()?.sum_keepdim(dim)? + 1e-6)?.sqrt()?.recip()?;
    x.broadcast_mul(&inv)
}

impl CandleSoftMoe {
    pub fn new(w: &SoftMoeWeights) -> Result<Self> {
        let dev = Device::Cpu;
        let (d, n, p, h) = (w.d, w.n, w.p, w.h);
        let mu = Tensor::from_slice(&w.mu, (d, n * p), &dev)?;
        let mu = if w.normalize { l2_normalize(&mu, 0)? } else { mu };
        Ok(CandleSoftMoe {
            mu,
            scale: w.scale as f64,
            w0: Tensor::from_slice(&w.w0, (n, d, h), &dev)?,
            b0: Tensor::from_slice(&w.b0, (n, 1, h), &dev)?,
            w1: Tensor::from_slice(&w.w1, (n, h, d), &dev)?,
            b1: Tensor::from_slice(&w.b1, (n, 1, d), &dev)?,
            n,
            p,
            gelu: w.gelu,
            normalize: w.normalize,
        })
    }

    /// y [b, m, d] for x [b, m, d].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, m, d) = x.dims3()?;
        let s = self.n * self.p;
        let xn = if self.normalize { l2_normalize(x, 2)? } else { x.clone() };
        let logits = (xn.reshape((b * m, d))?.matmul(&self.mu)? * self.scale)?.reshape((b, m, s))?;
        let dispatch = candle_core::Tensor::exp(&(logits.broadcast_sub(&logits.max_keepdim(1)?)?))?;
        let dispatch = dispatch.broadcast_div(&dispatch.sum_keepdim(1)?)?;
        let combine = candle_core::Tensor::exp(&(logits.broadcast_sub(&logits.max_keepdim(D::Minus1)?)?))?;
        let combine = combine.broadcast_div(&combine.sum_keepdim(D::Minus1)?)?;
        // Slot inputs [b, s, d] → expert-major [n, b·p, d].
        let xs = dispatch.transpose(1, 2)?.contiguous()?.matmul(x)?;
        let xs = xs.reshape((b, self.n, self.p, d))?.transpose(0, 1)?.contiguous()?.reshape((self.n, b * self.p, d))?;
        let hidden = xs.matmul(&self.w0)?.broadcast_add(&self.b0)?;
        let hidden = match self.gelu {
            Gelu::Tanh => hidden.gelu()?,
            Gelu::Erf => hidden.gelu_erf()?,
        };
        let ys = hidden.matmul(&self.w1)?.broadcast_add(&self.b1)?;
        let ys = ys.reshape((self.n, b, self.p, d))?.transpose(0, 1)?.contiguous()?.reshape((b, s, d))?;
        combine.matmul(&ys)
    }
}

pub fn input(x: &softmoe::Tensor) -> Result<Tensor> {
    Tensor::from_slice(&x.data, (x.shape[0], x.shape[1], x.shape[2]), &Device::Cpu)?.to_dtype(DType::F32)
}
