//! The trainer's learning-rate schedule: linear warm-up from 0, then cosine decay to 0.

/// The learning rate of step `step` (0-based) of `total`, after `warmup` warm-up steps, peaking at `lr`.
pub fn lr_at(step: usize, total: usize, warmup: usize, lr: f64) -> f64 {
    if step < warmup {
        lr * (step + 1) as f64 / warmup as f64
    } else {
        let t = (step - warmup) as f64 / (total - warmup).max(1) as f64;
        lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

/// Warm-up steps for `warmup_epochs` of `steps_per_epoch`, at most half of `total`.
pub fn warmup_steps(warmup_epochs: f64, steps_per_epoch: usize, total: usize) -> usize {
    ((warmup_epochs * steps_per_epoch as f64) as usize).min(total / 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warms_up_linearly_then_decays_to_zero() {
        let (total, warmup, lr) = (100, 10, 4e-3);
        assert_eq!(lr_at(0, total, warmup, lr), lr / 10.0);
        assert_eq!(lr_at(9, total, warmup, lr), lr);
        assert_eq!(lr_at(10, total, warmup, lr), lr);
        assert!((lr_at(55, total, warmup, lr) - lr / 2.0).abs() < 1e-12);
        assert!(lr_at(99, total, warmup, lr) < lr * 1e-3);
        assert_eq!(warmup_steps(0.5, 469, 469 * 24), 234);
        assert_eq!(warmup_steps(0.5, 469, 100), 50);
    }
}
