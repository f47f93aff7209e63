//! Everything that runs on the GPU, against SPEC's vectors, invariants and the f64 reference.
//! One binary, so the device is created once.

mod batch;
mod bf16;
mod common;
mod f16_weights;
mod invariants;
mod reliability;
mod soft_moe_pytorch;
mod sparse;
mod spec_vectors;
mod stages;
mod sweep;
mod torchvision_vit;
mod vit_loader;
mod vit_model;
mod vmoe_fixtures;
