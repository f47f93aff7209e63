//! Prints the largest absolute difference per tensor between two safetensors files of equal layout.
//!
//! cargo run --release --example compare_outputs -- A.safetensors B.safetensors

use softmoe::SafeTensors;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [a, b] = &args[..] else {
        return Err("usage: compare_outputs A.safetensors B.safetensors".into());
    };
    let (a, b) = (SafeTensors::read(a)?, SafeTensors::read(b)?);
    for e in a.entries() {
        let (ta, tb) = (a.tensor_f32(&e.name)?, b.tensor_f32(&e.name)?);
        if ta.shape != tb.shape {
            return Err(format!("`{}`: shapes {:?} and {:?} differ", e.name, ta.shape, tb.shape).into());
        }
        // A NaN or infinity on either side is an error, not a difference that a fold would drop.
        let err = softmoe::compare::max_abs_diff(&ta.data, &tb.data).map_err(|why| format!("`{}`: {why}", e.name))?.max;
        let max = softmoe::compare::max_abs(&tb.data).map_err(|why| format!("`{}`: {why}", e.name))?;
        println!("{}: max |difference| {err:.3e} (max |value| {max:.3e}, {} values)", e.name, tb.data.len());
    }
    Ok(())
}
