//! The Soft MoE layer written with burn's tensor ops on burn's wgpu backend (fusion and autotune
//! on, as burn ships them): what a Rust user would write for WebGPU without softmoe. Same math as
//! SPEC §1, f32, on the same adapter as softmoe.

use burn::tensor::{activation, Device, DeviceKind, Tensor, TensorData};
use softmoe::{Gelu, SoftMoeWeights};

pub struct BurnSoftMoe {
    device: Device,
    mu: Tensor<3>, // [1, d, s], normalised when the layer normalises
    scale: f32,
    w0: Tensor<3>, // [n, d, h]
    b0: Tensor<3>, // [n, 1, h]
    w1: Tensor<3>, // [n, h, d]
    b1: Tensor<3>, // [n, 1, d]
    n: usize,
    p: usize,
    gelu: Gelu,
    normalize: bool,
}

fn l2_normalize(x: Tensor<3>, dim: usize) -> Tensor<3> {
    let norm = (x.clone().powi_scalar(2).sum_dim(dim) + 1e-6).sqrt();
    x / norm
}

/// vmoe's GELU (tanh approximation); burn's `gelu` is the erf one.
fn gelu_tanh(x: Tensor<3>) -> Tensor<3> {
    let inner = (x.clone() + x.clone().powi_scalar(3) * 0.044715) * 0.797_884_560_802_865_4;
    x * 0.5 * (inner.tanh() + 1.0)
}

impl BurnSoftMoe {
    /// The layer on burn's default wgpu device (wgpu's high-performance adapter, as softmoe picks).
    pub fn new(w: &SoftMoeWeights) -> Self {
        let device = Device::wgpu(DeviceKind::DefaultDevice);
        let (d, n, p, h) = (w.d, w.n, w.p, w.h);
        let t = |v: &[f32], shape: [usize; 3]| Tensor::<3>::from_data(TensorData::new(v.to_vec(), shape), &device);
        let mu = t(&w.mu, [1, d, n * p]);
        BurnSoftMoe {
            mu: if w.normalize { l2_normalize(mu, 1) } else { mu },
            scale: w.scale,
            w0: t(&w.w0, [n, d, h]),
            b0: t(&w.b0, [n, 1, h]),
            w1: t(&w.w1, [n, h, d]),
            b1: t(&w.b1, [n, 1, d]),
            n,
            p,
            gelu: w.gelu,
            normalize: w.normalize,
            device,
        }
    }

    /// y [b, m, d] for x [b, m, d], read back to the host (as softmoe's forward does).
    pub fn forward(&self, x: &softmoe::Tensor) -> Result<Vec<f32>, String> {
        let (b, m, d) = (x.shape[0], x.shape[1], x.shape[2]);
        let (n, p, s) = (self.n, self.p, self.n * self.p);
        let x = Tensor::<3>::from_data(TensorData::new(x.data.clone(), [b, m, d]), &self.device);
        let xn = if self.normalize { l2_normalize(x.clone(), 2) } else { x.clone() };
        let logits = xn.matmul(self.mu.clone().expand([b, d, s])) * self.scale;
        let dispatch = activation::softmax(logits.clone(), 1);
        let combine = activation::softmax(logits, 2);
        // Slot inputs [b, s, d] → expert-major [n, b·p, d].
        let xs = dispatch.swap_dims(1, 2).matmul(x);
        let xs = xs.reshape([b, n, p, d]).swap_dims(0, 1).reshape([n, b * p, d]);
        let hidden = xs.matmul(self.w0.clone()) + self.b0.clone();
        let hidden = match self.gelu {
            Gelu::Tanh => gelu_tanh(hidden),
            Gelu::Erf => activation::gelu(hidden),
        };
        let ys = hidden.matmul(self.w1.clone()) + self.b1.clone();
        let ys = ys.reshape([n, b, p, d]).swap_dims(0, 1).reshape([b, s, d]);
        // try_into_data: an allocation burn cannot make (e.g. a buffer over the adapter's limit) is an
        // error to report, not a panic.
        let data = combine.matmul(ys).try_into_data().map_err(|e| short_error(&format!("{e:?}")))?;
        data.try_to_vec::<f32>().map_err(|e| format!("burn output: {e:?}"))
    }
}

/// The innermost cause of one of burn's nested errors, on one line (the report's note column).
fn short_error(debug: &str) -> String {
    let cause = debug.lines().map(str::trim).rfind(|l| l.contains("can't allocate") || l.contains("limit"));
    cause.unwrap_or_else(|| debug.lines().next().unwrap_or("unknown error")).replace('|', "/")
}
