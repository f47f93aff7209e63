//! `round_bf16`: the kernel's rounding on the CPU (bit for bit), and the same rounding of f64
//! values for the f64 reference.

/// `v` rounded to bfloat16 (round to nearest, ties to even), as f32: the kernel's bit operation.
pub fn round_bf16(v: f32) -> f32 {
    let bits = v.to_bits();
    if bits & 0x7fff_ffff > 0x7f80_0000 {
        return v;
    }
    f32::from_bits((bits.wrapping_add(0x7fff + ((bits >> 16) & 1))) & 0xffff_0000)
}

/// `v` rounded to the nearest bfloat16 value (ties to even) without rounding to f32 first: 8
/// significant bits with f32's exponent range (subnormals at multiples of 2⁻¹³³, past the largest
/// finite value infinity).
pub fn round_bf16_f64(v: f64) -> f64 {
    if !v.is_finite() || v == 0.0 {
        return v;
    }
    let bits = v.to_bits();
    let exponent = ((bits >> 52) & 0x7ff) as i32 - 1023;
    if exponent < -126 {
        let quantum = 2f64.powi(-133);
        return (v / quantum).round_ties_even() * quantum;
    }
    // Keep 7 of the 52 fraction bits, rounding the 45 dropped ones to nearest, ties to even; a carry
    // moves into the exponent as it should.
    let lsb = (bits >> 45) & 1;
    let r = f64::from_bits((bits + (1u64 << 44) - 1 + lsb) & !((1u64 << 45) - 1));
    if r.abs() >= 2f64.powi(128) {
        f64::INFINITY.copysign(v)
    } else {
        r
    }
}
