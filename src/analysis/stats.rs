//! Per-image routing statistics of one Soft MoE block (docs/analysis.md), in f64 from f32 maps.

/// Natural-log entropy −Σ pᵢ ln pᵢ of a distribution (0·ln 0 = 0).
pub fn entropy(p: impl IntoIterator<Item = f64>) -> f64 {
    p.into_iter().filter(|&v| v > 0.0).map(|v| -v * v.ln()).sum::<f64>().max(0.0)
}

/// The effective number of entries 1/Σ pᵢ² of a distribution summing to 1.
pub fn effective_count(p: impl IntoIterator<Item = f64>) -> f64 {
    1.0 / p.into_iter().map(|v| v * v).sum::<f64>()
}

/// Cosine similarity of two vectors (0 when either is zero).
pub fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
    let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na * nb)
    }
}

/// The statistics of one image's maps D and C, both [m, s] row-major (s = n·p slots).
#[derive(Clone, Debug, PartialEq)]
pub struct ImageStats {
    /// Per slot j: −Σᵢ Dᵢⱼ ln Dᵢⱼ, in [0, ln m].
    pub dispatch_entropy: Vec<f64>,
    /// Per slot j: 1/Σᵢ Dᵢⱼ², in [1, m].
    pub effective_tokens: Vec<f64>,
    /// Per token i: −Σⱼ Cᵢⱼ ln Cᵢⱼ, in [0, ln s].
    pub combine_entropy: Vec<f64>,
    /// Per token i: 1/Σⱼ Cᵢⱼ², in [1, s].
    pub effective_slots: Vec<f64>,
    /// Per slot j: Σᵢ Cᵢⱼ, the combine mass the image's tokens read from it.
    pub slot_combine_mass: Vec<f64>,
}

/// One image's statistics from its dispatch and combine maps [m, s].
pub fn image_stats(dispatch: &[f32], combine: &[f32], m: usize, s: usize) -> ImageStats {
    let d = |i: usize, j: usize| f64::from(dispatch[i * s + j]);
    let c = |i: usize, j: usize| f64::from(combine[i * s + j]);
    ImageStats {
        dispatch_entropy: (0..s).map(|j| entropy((0..m).map(|i| d(i, j)))).collect(),
        effective_tokens: (0..s).map(|j| effective_count((0..m).map(|i| d(i, j)))).collect(),
        combine_entropy: (0..m).map(|i| entropy((0..s).map(|j| c(i, j)))).collect(),
        effective_slots: (0..m).map(|i| effective_count((0..s).map(|j| c(i, j)))).collect(),
        slot_combine_mass: (0..s).map(|j| (0..m).map(|i| c(i, j)).sum()).collect(),
    }
}

/// A histogram over fixed, equal bins of [lo, hi] with the values' mean and quantiles.
#[derive(Clone, Debug)]
pub struct Distribution {
    pub lo: f64,
    pub hi: f64,
    pub counts: Vec<u64>,
    pub mean: f64,
    /// The 5th, 25th, 50th, 75th and 95th percentiles (nearest rank).
    pub quantiles: [f64; 5],
    pub min: f64,
    pub max: f64,
}

/// The quantile levels of [`Distribution::quantiles`].
pub const QUANTILES: [f64; 5] = [0.05, 0.25, 0.5, 0.75, 0.95];

impl Distribution {
    /// `values` binned into `bins` equal bins of [lo, hi]; values outside (round-off) go to the end bins.
    pub fn of(values: &[f64], lo: f64, hi: f64, bins: usize) -> Self {
        let mut counts = vec![0u64; bins];
        let width = (hi - lo) / bins as f64;
        for &v in values {
            let b = if width > 0.0 { ((v - lo) / width).floor() } else { 0.0 };
            counts[(b.max(0.0) as usize).min(bins - 1)] += 1;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = |q: f64| {
            if sorted.is_empty() {
                f64::NAN
            } else {
                sorted[((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
            }
        };
        let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
        Distribution {
            lo,
            hi,
            counts,
            mean,
            quantiles: QUANTILES.map(rank),
            min: sorted.first().copied().unwrap_or(f64::NAN),
            max: sorted.last().copied().unwrap_or(f64::NAN),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_and_one_hot_are_the_extremes() {
        let u = [0.25; 4];
        assert!((entropy(u.iter().copied()) - 4f64.ln()).abs() < 1e-15);
        assert_eq!(effective_count(u.iter().copied()), 4.0);
        assert_eq!(entropy([1.0, 0.0, 0.0]), 0.0);
        assert_eq!(effective_count([1.0, 0.0, 0.0]), 1.0);
        assert!((cosine(&[1.0, 0.0], &[1.0, 1.0]) - 0.5f64.sqrt()).abs() < 1e-15);
    }

    #[test]
    fn a_distribution_bins_and_ranks_its_values() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let d = Distribution::of(&v, 0.0, 100.0, 10);
        assert_eq!(d.counts, vec![9, 10, 10, 10, 10, 10, 10, 10, 10, 11]);
        assert_eq!(d.quantiles, [5.0, 25.0, 50.0, 75.0, 95.0]);
        assert_eq!((d.min, d.max, d.mean), (1.0, 100.0, 50.5));
    }
}
