//! The Soft MoE layer against SPEC's vectors, its invariants and the f64 reference, on GPU and CPU.

mod batch;
mod common;
mod invariants;
mod kernels;
mod spec_vectors;
mod sweep;
