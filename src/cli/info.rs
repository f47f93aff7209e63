//! `softmoe info`: what the GPU adapter is and can do.

use softmoe::{Error, GpuContext};

pub fn run() -> Result<(), Error> {
    let ctx = pollster::block_on(GpuContext::new())?;
    println!("{}", ctx.describe());
    Ok(())
}
