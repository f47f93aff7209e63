//! Cross-entropy: the f64 gradient against central differences of the f64 loss, the kernels
//! against the f64 reference, labels out of range refused.

use super::reference::{cross_entropy, cross_entropy_backward};
use super::{backward_op, check_labels, op};
use crate::model::argmax;
use crate::random::Rng;
use crate::testing::{assert_close, run_and_read, shared_context, to_f64, upload, upload_u32};

fn labels(rng: &mut Rng, b: usize, classes: usize) -> Vec<u32> {
    (0..b).map(|_| rng.range(0, classes - 1) as u32).collect()
}

#[test]
fn the_f64_gradient_is_the_slope_of_the_mean_loss() {
    let mut rng = Rng::new(310);
    let (b, k) = (3, 7);
    let l: Vec<f64> = to_f64(&rng.vec(b * k, 4.0));
    let y = labels(&mut rng, b, k);
    for eps in [0.0, 0.1] {
        let mean = |l: &[f64]| cross_entropy(l, &y, k, eps).iter().sum::<f64>() / b as f64;
        let g = cross_entropy_backward(&l, &y, k, eps);
        for i in 0..l.len() {
            let (mut up, mut down) = (l.clone(), l.clone());
            up[i] += 1e-6;
            down[i] -= 1e-6;
            let fd = (mean(&up) - mean(&down)) / 2e-6;
            assert!((fd - g[i]).abs() < 1e-8, "ε {eps}, logit {i}: {fd} vs {}", g[i]);
        }
    }
}

#[test]
fn loss_prediction_and_gradient_match_the_reference() {
    let mut rng = Rng::new(311);
    let c = shared_context();
    for (b, k, eps) in [(1, 1, 0.0), (5, 10, 0.1), (67, 3, 0.3), (130, 17, 0.0)] {
        let l = rng.vec(b * k, 8.0);
        let y = labels(&mut rng, b, k);
        let (lb, yb, ob, gb) = (upload(&c, &l), upload_u32(&c, &y), upload(&c, &vec![0.0; 2 * b]), upload(&c, &vec![0.0; b * k]));
        let out = run_and_read(&c, &[&op(&c, &lb, &yb, &ob, b, k, eps).unwrap()], &ob, 2 * b);
        let loss: Vec<f64> = out.iter().step_by(2).copied().collect();
        let want = cross_entropy(&to_f64(&l), &y, k, eps as f64);
        assert_close(&format!("loss b{b} k{k} ε{eps}"), &loss, &want, 2e-5);
        for e in 0..b {
            assert_eq!(out[2 * e + 1] as usize, argmax(&l[e * k..(e + 1) * k]), "prediction of example {e}");
        }
        let grad = run_and_read(&c, &[&backward_op(&c, &lb, &yb, &gb, b, k, eps).unwrap()], &gb, b * k);
        let want = cross_entropy_backward(&to_f64(&l), &y, k, eps as f64);
        assert_close(&format!("gradient b{b} k{k} ε{eps}"), &grad, &want, 1e-6 / b as f64);
    }
}

#[test]
fn labels_and_smoothing_out_of_range_are_refused() {
    let e = check_labels(&[1, 9, 10], 10).unwrap_err().to_string();
    assert!(e.contains("10 at example 2"), "{e}");
    let c = shared_context();
    let buf = upload(&c, &[0.0; 4]);
    let e = op(&c, &buf, &buf, &buf, 1, 2, 1.0).err().expect("smoothing 1 refused").to_string();
    assert!(e.contains("label smoothing"), "{e}");
}
