//! Comparing two outputs element by element: the largest absolute difference and where it is,
//! refusing any NaN or infinity on either side.
//!
//! A plain `fold(0.0, f64::max)` over `|a − b|` drops NaNs (`f64::max` returns the other operand), so
//! an output with a few NaNs would pass any tolerance. Every numeric comparison in the tests, the
//! fuzz oracle and the CLI goes through [`max_abs_diff`] instead.
//!
//! ```
//! use softmoe::compare::max_abs_diff;
//! let d = max_abs_diff(&[1.0f32, 2.0, 3.5], &[1.0f64, 2.25, 3.0]).unwrap();
//! assert_eq!((d.max, d.index), (0.5, 2));
//! assert!(d.within("y", 0.5).is_ok() && d.within("y", 0.4).is_err());
//! assert!(max_abs_diff(&[1.0f32, f32::NAN], &[1.0f32, 2.0]).unwrap_err().contains("index 1"));
//! ```

/// The largest absolute difference between two equally long, finite sequences.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MaxDiff {
    /// max |got − want| (0 for empty sequences).
    pub max: f64,
    /// The flat index of the first element with that difference.
    pub index: usize,
    pub got: f64,
    pub want: f64,
    /// Elements compared.
    pub len: usize,
}

impl MaxDiff {
    /// Ok when the largest difference is at most `tol`; else a message naming `what`, the worst
    /// element and both values.
    pub fn within(&self, what: &str, tol: f64) -> Result<(), String> {
        if self.max <= tol {
            Ok(())
        } else {
            Err(format!(
                "{what}: max |got − want| = {:e} > tolerance {tol:e} at index {} of {} (got {}, want {})",
                self.max, self.index, self.len, self.got, self.want
            ))
        }
    }
}

/// Compares `got` with `want` (f32 or f64 on either side). Errors on a length mismatch and on the
/// first NaN or infinity in either, naming its index and side.
pub fn max_abs_diff<A: Copy + Into<f64>, B: Copy + Into<f64>>(got: &[A], want: &[B]) -> Result<MaxDiff, String> {
    if got.len() != want.len() {
        return Err(format!("length mismatch: got {} values, want {}", got.len(), want.len()));
    }
    let mut worst = MaxDiff { max: 0.0, index: 0, got: 0.0, want: 0.0, len: got.len() };
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let (g, w): (f64, f64) = (g.into(), w.into());
        if !g.is_finite() || !w.is_finite() {
            let side = if g.is_finite() { "want" } else { "got" };
            return Err(format!("non-finite value at index {i} of {} ({side}): got {g}, want {w}", got.len()));
        }
        let d = (g - w).abs();
        if d > worst.max || i == 0 {
            worst = MaxDiff { max: d, index: i, got: g, want: w, len: got.len() };
        }
    }
    Ok(worst)
}

/// The largest |v| of a finite sequence, or an error naming the first non-finite index.
pub fn max_abs<A: Copy + Into<f64>>(v: &[A]) -> Result<f64, String> {
    let mut m = 0.0f64;
    for (i, &a) in v.iter().enumerate() {
        let a: f64 = a.into();
        if !a.is_finite() {
            return Err(format!("non-finite value {a} at index {i} of {}", v.len()));
        }
        m = m.max(a.abs());
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_nan_or_infinity_on_either_side_is_refused() {
        let clean = vec![0.5f64; 100];
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for i in [0, 37, 99] {
                let mut v = clean.clone();
                v[i] = bad;
                let e = max_abs_diff(&v, &clean).unwrap_err();
                assert!(e.contains(&format!("index {i} ")) && e.contains("(got)"), "{e}");
                let e = max_abs_diff(&clean, &v).unwrap_err();
                assert!(e.contains(&format!("index {i} ")) && e.contains("(want)"), "{e}");
            }
        }
        assert!(max_abs(&[1.0f32, f32::NAN]).unwrap_err().contains("index 1"));
    }

    #[test]
    fn the_worst_element_is_reported() {
        let d = max_abs_diff(&[1.0f32, -3.0, 2.0, -3.0], &[1.0f32, 1.0, 2.5, 1.0]).unwrap();
        assert_eq!((d.max, d.index, d.got, d.want, d.len), (4.0, 1, -3.0, 1.0, 4));
        let e = d.within("logits", 1.0).unwrap_err();
        assert!(e.contains("logits") && e.contains("index 1 of 4"), "{e}");
        assert!(d.within("logits", 4.0).is_ok());
    }

    #[test]
    fn lengths_must_match_and_empty_is_equal() {
        assert!(max_abs_diff(&[1.0f32], &[1.0f32, 2.0]).unwrap_err().contains("length mismatch"));
        assert_eq!(max_abs_diff::<f32, f32>(&[], &[]).unwrap().max, 0.0);
        assert_eq!(max_abs_diff(&[-0.0f64], &[0.0f64]).unwrap().max, 0.0);
    }
}
