//! A minimal host tensor: a shape and row-major f32 data.

use crate::error::{Error, Result};

/// Row-major f32 data with its shape; the host-side currency of the crate.
///
/// ```
/// use softmoe::Tensor;
/// let x = Tensor::new(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
/// assert_eq!(x.numel(), 6);
/// let e = Tensor::new(vec![2, 3], vec![0.0; 5]).unwrap_err().to_string();
/// assert!(e.contains("tensor of shape [2, 3]: expected 6 values, found 5 values"));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Tensor {
    /// Wraps `data` as a tensor of `shape`, checking that the sizes agree.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self> {
        let numel =
            numel(&shape).ok_or_else(|| Error::input("tensor shape", "a size that fits the address space", format!("{shape:?}")))?;
        if numel != data.len() {
            return Err(Error::input(format!("tensor of shape {shape:?}"), format!("{numel} values"), format!("{} values", data.len())));
        }
        Ok(Tensor { shape, data })
    }

    /// A tensor of zeros.
    pub fn zeros(shape: Vec<usize>) -> Self {
        let n = shape.iter().product();
        Tensor { shape, data: vec![0.0; n] }
    }

    pub fn numel(&self) -> usize {
        self.data.len()
    }
}

/// Number of elements of `shape`, or None on overflow.
pub fn numel(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d))
}
