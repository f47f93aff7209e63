//! `round_bf16` against its reference (bit for bit) and the reference against the `half` crate.

use super::op;
use super::reference::{round_bf16, round_bf16_f64};
use crate::random::Rng;
use crate::testing::{assert_bits, run_and_read_f32, shared_context, upload};

/// Random bit patterns of every exponent, ties, and the edges (zeros, the largest values, infinity,
/// NaN, subnormals).
fn values(rng: &mut Rng, len: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..len)
        .map(|i| match i % 4 {
            0 => f32::from_bits(rng.next_u64() as u32),
            // Exactly half-way between two bf16 values, both parities.
            1 => f32::from_bits(((rng.next_u64() as u32) & 0xffff_0000) | 0x8000),
            _ => rng.uniform() * 10f32.powi(rng.range(0, 12) as i32 - 6),
        })
        .collect();
    v.extend([0.0, -0.0, 1.0, f32::MAX, f32::MIN, f32::MIN_POSITIVE, 1e-40, -3e-42, f32::INFINITY, f32::NEG_INFINITY, f32::NAN]);
    v
}

#[test]
fn the_reference_is_half_s_round_to_nearest_even() {
    let v = values(&mut Rng::new(108), 20_000);
    for &x in &v {
        let want = half::bf16::from_f32(x).to_f32();
        let got = round_bf16(x);
        assert!(
            got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
            "{x:e} ({:#010x}): {got:e} vs half's {want:e}",
            x.to_bits()
        );
        // The f64 rounding agrees on every value an f32 can hold (there is no second rounding).
        let wide = round_bf16_f64(x as f64);
        assert!(wide == got as f64 || (wide.is_nan() && got.is_nan()), "{x:e}: f64 rounding {wide:e} vs {got:e}");
    }
}

#[test]
fn the_kernel_rounds_in_place_bit_for_bit() {
    let mut rng = Rng::new(109);
    let c = shared_context();
    for len in [1, 63, 64, 1000, 4097] {
        let v = values(&mut rng, len);
        let b = upload(&c, &v);
        let got = run_and_read_f32(&c, &[&op(&c, &b, v.len()).unwrap()], &b, v.len());
        let want: Vec<f32> = v.iter().map(|&x| round_bf16(x)).collect();
        // NaN's bits are kept as they were; compare them as bits too.
        assert_bits(
            &format!("{len} values"),
            &got.iter().map(|x| x.to_bits() as f64).collect::<Vec<_>>(),
            &want.iter().map(|x| x.to_bits() as f64).collect::<Vec<_>>(),
        );
    }
    // Only `len` values are rounded.
    let v = vec![1.001f32; 70];
    let b = upload(&c, &v);
    let got = run_and_read_f32(&c, &[&op(&c, &b, 65).unwrap()], &b, 70);
    assert!(got[..65].iter().all(|&x| x == 1.0) && got[65..].iter().all(|&x| x == 1.001), "{got:?}");
}
