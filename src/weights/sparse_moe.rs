//! The weights of one sparse MoE layer (Tokens Choice or Experts Choice), vmoe's names.

use crate::config::Gelu;
use crate::error::{Error, Result};
use crate::routing::Router;

/// One sparse MoE layer: a router kernel and n expert MLPs. Kernels are stored [in, out].
#[derive(Clone, Debug, PartialEq)]
pub struct SparseMoeWeights {
    pub d: usize,
    /// Number of experts.
    pub n: usize,
    /// Expert hidden width.
    pub h: usize,
    pub router: Router,
    /// Images per routing group: their tokens compete for the experts' capacity.
    pub group_size: usize,
    /// `Router/dense/kernel`, [d, n] (no bias): gates = softmax over experts of x·W.
    pub wr: Vec<f32>,
    /// `Mlp/Dense_0/kernel` [n, d, h], `Mlp/Dense_0/bias` [n, h].
    pub w0: Vec<f32>,
    pub b0: Vec<f32>,
    /// `Mlp/Dense_1/kernel` [n, h, d], `Mlp/Dense_1/bias` [n, d].
    pub w1: Vec<f32>,
    pub b1: Vec<f32>,
    pub gelu: Gelu,
    /// Round the dispatched tokens and the experts' outputs to bfloat16, as vmoe's routers do with
    /// `dispatcher: {bfloat16: true}` (`Bfloat16Dispatcher`); default false.
    pub dispatch_bfloat16: bool,
}

pub const ROUTER_KERNEL: &str = "Router/dense/kernel";

impl SparseMoeWeights {
    /// Checks sizes, router parameters and values.
    pub fn validate(&self) -> Result<()> {
        let (d, n, h) = (self.d, self.n, self.h);
        for (key, v) in [("d", d), ("n", n), ("h", h), ("group_size", self.group_size)] {
            if v == 0 {
                return Err(Error::config("layer weights", key, "positive (d, n, h and group_size must be positive)", v));
            }
        }
        self.router.validate(n)?;
        let checks: [(&str, &[f32], usize); 5] = [
            (ROUTER_KERNEL, &self.wr, d * n),
            ("Mlp/Dense_0/kernel", &self.w0, n * d * h),
            ("Mlp/Dense_0/bias", &self.b0, n * h),
            ("Mlp/Dense_1/kernel", &self.w1, n * h * d),
            ("Mlp/Dense_1/bias", &self.b1, n * d),
        ];
        for (name, data, want) in checks {
            if data.len() != want {
                return Err(Error::config("layer weights", name, format!("{want} values"), format!("{} values", data.len())));
            }
            if let Some(i) = data.iter().position(|v| !v.is_finite()) {
                return Err(Error::NonFinite { context: "layer weights".into(), name: name.into(), index: i });
            }
        }
        Ok(())
    }

    /// Expert capacity for a group of `tokens` tokens: vmoe's `compute_capacity`, rounded up to
    /// the router's `capacity_multiple_of` (see [`Router::capacity`]).
    pub fn capacity(&self, tokens: usize) -> usize {
        self.router.capacity(tokens, self.n)
    }
}
