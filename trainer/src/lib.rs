//! The candle trainer as a library: the model, its custom ops, the data and one training step, so
//! that the `trainer` binary and softmoe's benchmark (training images/s beside the GPU trainer) run
//! the same code.

pub mod data;
pub mod model;
pub mod ops;
pub mod step;

#[cfg(test)]
mod gpu_step_tests;
#[cfg(test)]
mod tests;
