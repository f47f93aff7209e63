//! `add_position` in f64.

/// x += pos, with pos repeating every `pos.len()` values (once per image).
pub fn add_position(x: &mut [f64], pos: &[f32]) {
    for (i, v) in x.iter_mut().enumerate() {
        *v += pos[i % pos.len()] as f64;
    }
}

/// The kernel's own rule: as [`add_position`], but the first `prefix` values of each period are
/// set to pos.
pub fn set_or_add_position(x: &mut [f64], pos: &[f32], prefix: usize) {
    for (i, v) in x.iter_mut().enumerate() {
        let j = i % pos.len();
        *v = if j < prefix { pos[j] as f64 } else { *v + pos[j] as f64 };
    }
}
