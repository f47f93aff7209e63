//! `add_position` in f64.

/// x += pos, with pos repeating every `pos.len()` values (once per image).
pub fn add_position(x: &mut [f64], pos: &[f32]) {
    for (i, v) in x.iter_mut().enumerate() {
        *v += pos[i % pos.len()] as f64;
    }
}
