//! Everything that runs on the GPU, against SPEC's vectors, invariants and the f64 reference.
//! One binary, so the device is created once.

mod batch;
mod common;
mod f16_weights;
mod invariants;
mod kernels;
mod reliability;
mod sparse;
mod spec_vectors;
mod sweep;
mod vit_kernels;
mod vit_loader;
mod vit_model;
