//! Central finite differences: how every f64 reference gradient of the crate is checked.

/// Checks `grad` = ∇f(x) element by element against (f(x + h eᵢ) − f(x − h eᵢ)) / 2h with
/// h = 1e-6·max(1, |xᵢ|), within `tol`·(1 + |gradᵢ|); panics naming the worst element.
pub fn check_gradient(what: &str, x: &[f64], f: impl Fn(&[f64]) -> f64, grad: &[f64], tol: f64) {
    check_gradient_with_step(what, x, f, grad, tol, 1e-6)
}

/// As `check_gradient` with steps of `step`·max(1, |xᵢ|): larger steps for functions of values
/// rounded to f32, where 1e-6 would drown in the rounding.
pub fn check_gradient_with_step(what: &str, x: &[f64], f: impl Fn(&[f64]) -> f64, grad: &[f64], tol: f64, step: f64) {
    assert_eq!(x.len(), grad.len(), "{what}: gradient length");
    let mut worst = (0.0f64, 0usize, 0.0f64);
    let mut probe = x.to_vec();
    for i in 0..x.len() {
        let h = step * x[i].abs().max(1.0);
        probe[i] = x[i] + h;
        let up = f(&probe);
        probe[i] = x[i] - h;
        let down = f(&probe);
        probe[i] = x[i];
        let fd = (up - down) / (2.0 * h);
        let err = (fd - grad[i]).abs() / (1.0 + grad[i].abs());
        if err > worst.0 {
            worst = (err, i, fd);
        }
    }
    let (err, i, fd) = worst;
    assert!(err <= tol, "{what}: element {i}: central difference {fd}, gradient {} (relative error {err:.2e} > {tol:.0e})", grad[i]);
}
