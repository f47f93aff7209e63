//! Batches of an epoch as the candle trainer draws them: the order shuffled once per epoch, each
//! image flipped left–right with probability ½ (its `--augment flip` default), from one generator
//! seeded with seed + 1.

use crate::train::init::TrainRng;

/// Which augmentation a batch gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Augment {
    None,
    /// Horizontal flips with probability ½.
    Flip,
}

/// The epochs' order and augmentation draws.
pub struct Batches {
    rng: TrainRng,
    order: Vec<usize>,
    augment: Augment,
}

impl Batches {
    /// For `images` training images and the run's `seed`.
    pub fn new(images: usize, seed: u64, augment: Augment) -> Self {
        Batches { rng: TrainRng::new(seed.wrapping_add(1)), order: (0..images).collect(), augment }
    }

    /// Shuffles for the next epoch and returns its order (the trainer shuffles the previous
    /// epoch's order again).
    pub fn next_epoch(&mut self) -> Vec<usize> {
        self.rng.shuffle(&mut self.order);
        self.order.clone()
    }

    /// Copies the images `idx` of `pixels` (28×28 each, `side` × `side` in general) into `out`, each
    /// flipped or not by the next draw.
    pub fn fill(&mut self, pixels: &[f32], side: usize, idx: &[usize], out: &mut Vec<f32>) {
        out.clear();
        let per = side * side;
        for &i in idx {
            let src = &pixels[i * per..(i + 1) * per];
            let flip = self.augment == Augment::Flip && self.rng.below(2) == 1;
            for y in 0..side {
                for x in 0..side {
                    out.push(src[y * side + if flip { side - 1 - x } else { x }]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_are_permutations_and_flips_mirror_rows() {
        let mut b = Batches::new(10, 42, Augment::Flip);
        let mut e = b.next_epoch();
        e.sort();
        assert_eq!(e, (0..10).collect::<Vec<_>>());
        let pixels: Vec<f32> = (0..2 * 9).map(|v| v as f32).collect();
        let mut out = Vec::new();
        let mut flipped = 0;
        for _ in 0..20 {
            b.fill(&pixels, 3, &[1], &mut out);
            assert!(out == pixels[9..] || out == [11.0, 10.0, 9.0, 14.0, 13.0, 12.0, 17.0, 16.0, 15.0], "{out:?}");
            flipped += usize::from(out[0] == 11.0);
        }
        assert!((3..=17).contains(&flipped), "{flipped} of 20 flipped");
    }
}
