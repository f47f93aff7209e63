//! The sparse routers of the paper's comparison (vmoe's), as plain rules on a group's gates.
//!
//! A group is `g` tokens (one or more images) that compete for the experts' capacity; `gates` is
//! its [g, n] matrix of softmax-over-experts router probabilities. A route gives each (token,
//! expert) pair the slot the token fills in that expert's buffer, or None. The WGSL kernel
//! (`sparse_route.wgsl`), the f64 reference and the trainer all follow these rules, so the GPU's
//! choice can be checked exactly against this code on the same gates.
//!
//! Capacity (slots per expert and group) is vmoe's `compute_capacity` (vmoe/moe.py), see
//! [`compute_capacity`]; tests/fixtures/vmoe_capacity.json holds vmoe's own values
//! (tools/vmoe_capacity.py).
//!
//! Ties: a larger gate wins; on equal gates the lower index (token or expert) wins.

use std::cmp::Ordering;

use crate::error::{Error, Result};

/// vmoe's default `capacity_multiple_of` (both sparse dispatchers of vmoe/moe.py).
pub const VMOE_CAPACITY_MULTIPLE_OF: usize = 4;

/// The largest `capacity_multiple_of` accepted.
pub const MAX_CAPACITY_MULTIPLE_OF: usize = 1 << 16;

/// Which sparse router a layer uses, with its capacity rule.
///
/// ```
/// use softmoe::Router;
/// // vmoe's rule: a group of 8 images of 49 tokens on 8 experts, top-1, capacity factor 1.
/// assert_eq!(Router::tokens_choice(1, 1.0).capacity(8 * 49, 8), 52); // 49, rounded up to a multiple of 4
/// assert_eq!(Router::tokens_choice(1, 1.0).with_capacity_multiple_of(1).capacity(8 * 49, 8), 49);
/// ```
///
/// `capacity_multiple_of` rounds each capacity up to a multiple of it, as vmoe's dispatchers do
/// (default [`VMOE_CAPACITY_MULTIPLE_OF`] = 4, what [`Router::tokens_choice`] and
/// [`Router::experts_choice`] set); 0 and 1 leave ⌈k·g·cf/n⌉ as it is (vmoe's None, 0 and 1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Router {
    /// Each token picks its top-`k` experts; expert buffers hold `capacity` tokens, filled in
    /// priority order (all first choices by token position, then all second choices, ...), and a
    /// choice that finds its expert full is dropped.
    TokensChoice { k: usize, capacity_factor: f64, capacity_multiple_of: usize },
    /// Each expert picks the `capacity` tokens of the group with the largest gates for it; a
    /// token may be picked by several experts or by none.
    ExpertsChoice { capacity_factor: f64, capacity_multiple_of: usize },
}

impl Router {
    /// Tokens Choice top-`k` with vmoe's default capacity rule (multiple of 4).
    pub const fn tokens_choice(k: usize, capacity_factor: f64) -> Self {
        Router::TokensChoice { k, capacity_factor, capacity_multiple_of: VMOE_CAPACITY_MULTIPLE_OF }
    }

    /// Experts Choice with vmoe's default capacity rule (multiple of 4).
    pub const fn experts_choice(capacity_factor: f64) -> Self {
        Router::ExpertsChoice { capacity_factor, capacity_multiple_of: VMOE_CAPACITY_MULTIPLE_OF }
    }

    /// The same router with capacities rounded up to a multiple of `m` (0 or 1: not rounded).
    pub const fn with_capacity_multiple_of(self, m: usize) -> Self {
        match self {
            Router::TokensChoice { k, capacity_factor, .. } => Router::TokensChoice { k, capacity_factor, capacity_multiple_of: m },
            Router::ExpertsChoice { capacity_factor, .. } => Router::ExpertsChoice { capacity_factor, capacity_multiple_of: m },
        }
    }

    /// The config.json name of the router.
    pub fn name(&self) -> &'static str {
        match self {
            Router::TokensChoice { .. } => "tokens_choice",
            Router::ExpertsChoice { .. } => "experts_choice",
        }
    }

    /// Top-k of Tokens Choice; 0 for Experts Choice.
    pub fn k(&self) -> usize {
        match *self {
            Router::TokensChoice { k, .. } => k,
            Router::ExpertsChoice { .. } => 0,
        }
    }

    pub fn capacity_factor(&self) -> f64 {
        match *self {
            Router::TokensChoice { capacity_factor, .. } | Router::ExpertsChoice { capacity_factor, .. } => capacity_factor,
        }
    }

    /// The multiple capacities are rounded up to (0 and 1: none).
    pub fn capacity_multiple_of(&self) -> usize {
        match *self {
            Router::TokensChoice { capacity_multiple_of, .. } | Router::ExpertsChoice { capacity_multiple_of, .. } => capacity_multiple_of,
        }
    }

    /// Checks the router's parameters against `n` experts.
    pub fn validate(&self, n: usize) -> Result<()> {
        let cf = self.capacity_factor();
        if !(cf.is_finite() && cf > 0.0 && cf <= 64.0) {
            return Err(Error::config("router", "capacity_factor", "a number in (0, 64]", cf));
        }
        let mult = self.capacity_multiple_of();
        if mult > MAX_CAPACITY_MULTIPLE_OF {
            return Err(Error::config("router", "capacity_multiple_of", format!("an integer in 0..={MAX_CAPACITY_MULTIPLE_OF}"), mult));
        }
        if let Router::TokensChoice { k, .. } = *self {
            if k == 0 || k > n {
                return Err(Error::config("router", "router_k", format!("in 1..={n} (the number of experts)"), k));
            }
        }
        Ok(())
    }

    /// Slots per expert for a group of `g` tokens and `n` experts: vmoe's
    /// [`compute_capacity`] of k·g tokens (k = 1 for Experts Choice), rounded up to a multiple
    /// of `capacity_multiple_of`. It may exceed g: a Tokens Choice buffer then has empty slots (as
    /// in vmoe), and an Experts Choice expert takes every token of the group (vmoe's
    /// `jax.lax.top_k` refuses a capacity above the group size). 0 where vmoe raises an error,
    /// i.e. for an empty group.
    pub fn capacity(&self, g: usize, n: usize) -> usize {
        let k = match *self {
            Router::TokensChoice { k, .. } => k,
            Router::ExpertsChoice { .. } => 1,
        };
        compute_capacity(k * g, n, self.capacity_factor(), self.capacity_multiple_of()).unwrap_or(0)
    }
}

/// vmoe's `compute_capacity(num_tokens, num_experts, capacity_factor, ceil_or_round="ceil",
/// multiple_of)` (vmoe/moe.py): ⌈num_tokens·capacity_factor / num_experts⌉ in f64 (the
/// product first, as Python evaluates it), an error when that is below 1 (as vmoe raises), then
/// rounded up to a multiple of `multiple_of` when it is above 0. vmoe's Tokens Choice passes
/// num_tokens = group size · k, its Experts Choice the group size.
pub fn compute_capacity(num_tokens: usize, num_experts: usize, capacity_factor: f64, multiple_of: usize) -> Result<usize> {
    let x = num_tokens as f64 * capacity_factor / num_experts as f64;
    let c = x.ceil();
    if !(c >= 1.0 && c.is_finite()) {
        return Err(Error::config(
            format!("capacity of {num_tokens} tokens over {num_experts} experts"),
            "capacity_factor",
            "a factor giving a capacity of at least 1",
            format!("{capacity_factor} (capacity {c})"),
        ));
    }
    let c = c as usize;
    Ok(if multiple_of > 0 { c.div_ceil(multiple_of) * multiple_of } else { c })
}

/// True when (a at index i) beats (b at index j): larger value, then lower index.
fn beats<T: PartialOrd>(a: T, i: usize, b: T, j: usize) -> bool {
    a > b || (a == b && i < j)
}

/// Rank of expert `e` among token `t`'s gates (0 = its top choice).
fn choice_rank<T: PartialOrd + Copy>(gates: &[T], n: usize, t: usize, e: usize) -> usize {
    let row = &gates[t * n..(t + 1) * n];
    (0..n).filter(|&f| beats(row[f], f, row[e], e)).count()
}

/// The slot of each (token, expert) pair of one group, [g·n] row-major, for `gates` [g, n].
pub fn route<T: PartialOrd + Copy>(router: &Router, gates: &[T], n: usize) -> Vec<Option<usize>> {
    let g = gates.len() / n.max(1);
    let cap = router.capacity(g, n);
    let mut slots = vec![None; g * n];
    match *router {
        Router::TokensChoice { k, .. } => {
            let ranks: Vec<usize> = (0..g * n).map(|te| choice_rank(gates, n, te / n, te % n)).collect();
            for e in 0..n {
                // Fill expert e's buffer in priority order: choice round, then token position.
                let mut filled = 0;
                for round in 0..k {
                    for t in 0..g {
                        if ranks[t * n + e] == round {
                            if filled < cap {
                                slots[t * n + e] = Some(filled);
                            }
                            filled += 1;
                        }
                    }
                }
            }
        }
        Router::ExpertsChoice { .. } => {
            // Sorting needs a total order: NaN gates (never produced from finite inputs) keep the
            // quadratic count of `beats`, which cannot panic.
            let total = gates.iter().all(|v| v.partial_cmp(v).is_some());
            let mut order: Vec<usize> = (0..g).collect();
            for e in 0..n {
                let gate = |t: usize| gates[t * n + e];
                if total {
                    // Ranks by decreasing gate, ties to the lower token: the rule of `beats`.
                    order.sort_unstable_by(|&u, &t| gate(t).partial_cmp(&gate(u)).unwrap_or(Ordering::Equal).then(u.cmp(&t)));
                    for (rank, &t) in order.iter().take(cap).enumerate() {
                        slots[t * n + e] = Some(rank);
                    }
                } else {
                    for t in 0..g {
                        let rank = (0..g).filter(|&u| beats(gate(u), u, gate(t), t)).count();
                        if rank < cap {
                            slots[t * n + e] = Some(rank);
                        }
                    }
                }
            }
        }
    }
    slots
}

/// Token ranges of the groups of a batch of `b` images of `m` tokens, `group_images` images each
/// (the last group may be smaller).
pub fn groups(b: usize, m: usize, group_images: usize) -> Vec<std::ops::Range<usize>> {
    let gi = group_images.max(1);
    (0..b.div_ceil(gi)).map(|k| k * gi * m..((k + 1) * gi).min(b) * m).collect()
}

/// What a route did to a batch: tokens processed by no expert, and tokens per expert.
#[derive(Clone, Debug, PartialEq)]
pub struct RouteStats {
    pub tokens: usize,
    /// Tokens that no expert processed (their MoE output is zero; only the residual passes).
    pub dropped: usize,
    /// Token-slots taken, per expert.
    pub load: Vec<usize>,
}

impl RouteStats {
    /// From the slot map [tokens, n] of any number of groups.
    pub fn of(slots: &[Option<usize>], n: usize) -> Self {
        let tokens = slots.len() / n.max(1);
        let mut load = vec![0; n];
        let mut dropped = 0;
        for row in slots.chunks(n) {
            let mut any = false;
            for (e, s) in row.iter().enumerate() {
                if s.is_some() {
                    load[e] += 1;
                    any = true;
                }
            }
            dropped += usize::from(!any);
        }
        RouteStats { tokens, dropped, load }
    }

    /// Share of tokens dropped.
    pub fn dropped_share(&self) -> f64 {
        self.dropped as f64 / self.tokens.max(1) as f64
    }

    /// Load balance: the busiest expert's load over the mean load (1 = perfectly even).
    pub fn max_over_mean_load(&self) -> f64 {
        let total: usize = self.load.iter().sum();
        if total == 0 {
            return 1.0;
        }
        let mean = total as f64 / self.load.len() as f64;
        *self.load.iter().max().unwrap_or(&0) as f64 / mean
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Top-1, capacity factor 1, capacities not rounded (the rule of the shipped models).
    const TC1: Router = Router::TokensChoice { k: 1, capacity_factor: 1.0, capacity_multiple_of: 1 };

    #[test]
    fn capacity_follows_the_formula() {
        // vmoe's default rounds up to a multiple of 4: 52, not 49, for a group of 8 images of 49
        // tokens on 8 experts; 8, not 7, for one image.
        let tc = Router::tokens_choice(1, 1.0);
        assert_eq!((tc.capacity(49, 8), tc.capacity(392, 8)), (8, 52));
        assert_eq!(Router::tokens_choice(2, 1.25).capacity(49, 8), 16);
        assert_eq!(Router::tokens_choice(2, 1.25).capacity(50, 8), 16);
        assert_eq!(Router::experts_choice(1.0).capacity(3, 8), 4);
        // Above the group size: vmoe does not clamp (its experts-choice top_k would refuse it).
        assert_eq!(Router::experts_choice(64.0).capacity(3, 2), 96);
        assert_eq!(Router::experts_choice(1.0).capacity(0, 8), 0);
        // capacity_multiple_of 1 (or 0, vmoe's None) is ⌈k·g·cf/n⌉: the shipped models' rule.
        assert_eq!((TC1.capacity(49, 8), TC1.capacity(392, 8)), (7, 49));
        assert_eq!(TC1.with_capacity_multiple_of(0).capacity(49, 8), 7);
        assert_eq!(Router::TokensChoice { k: 2, capacity_factor: 1.25, capacity_multiple_of: 8 }.capacity(49, 8), 16);
        assert_eq!(Router::TokensChoice { k: 2, capacity_factor: 1.25, capacity_multiple_of: 8 }.capacity(55, 8), 24);
        // The float product decides, as in Python: 90·1.1/3 = 33.00000000000001, so 34.
        assert_eq!(compute_capacity(90, 3, 1.1, 1).unwrap(), 34);
        assert!(compute_capacity(0, 8, 1.0, 4).unwrap_err().to_string().contains("at least 1"));
    }

    /// Every capacity of tests/fixtures/vmoe_capacity.json, which tools/vmoe_capacity.py computed
    /// by executing vmoe's own `compute_capacity`.
    #[test]
    fn capacity_matches_vmoe_compute_capacity() {
        let fixture: serde_json::Value = serde_json::from_str(include_str!("../tests/fixtures/vmoe_capacity.json")).unwrap();
        assert_eq!(fixture["version"], 1);
        let first = fixture["group_tokens"][0].as_u64().unwrap() as usize;
        let mut checked = 0;
        for case in fixture["cases"].as_array().unwrap() {
            let n = case["experts"].as_u64().unwrap() as usize;
            let cf = case["capacity_factor"].as_f64().unwrap();
            let k = case["k"].as_u64().unwrap() as usize;
            // vmoe's None and 0 both mean no rounding; here that is 0.
            let mult = case["multiple_of"].as_u64().unwrap_or(0) as usize;
            let mut routers = vec![Router::TokensChoice { k, capacity_factor: cf, capacity_multiple_of: mult }];
            if k == 1 {
                routers.push(Router::ExpertsChoice { capacity_factor: cf, capacity_multiple_of: mult });
            }
            for (i, want) in case["capacity"].as_array().unwrap().iter().enumerate() {
                let g = first + i;
                let want = want.as_u64().map(|c| c as usize);
                let what = format!("g {g}, n {n}, cf {cf}, k {k}, multiple_of {}", case["multiple_of"]);
                assert_eq!(compute_capacity(k * g, n, cf, mult).ok(), want, "compute_capacity: {what}");
                for r in &routers {
                    // Where vmoe raises (an empty group), the router's capacity is 0.
                    assert_eq!(r.capacity(g, n), want.unwrap_or(0), "{r:?}: {what}");
                    checked += 1;
                }
            }
        }
        assert!(checked > 70_000, "{checked} capacities checked");
    }

    #[test]
    fn tokens_choice_fills_in_token_order_and_drops_overflow() {
        // 4 tokens, 2 experts, capacity ⌈4/2⌉ = 2: tokens 0, 1, 3 prefer expert 0, so 3 is dropped.
        let gates = [0.9, 0.1, 0.6, 0.4, 0.2, 0.8, 0.7, 0.3];
        let s = route(&TC1, &gates, 2);
        assert_eq!(s, vec![Some(0), None, Some(1), None, None, Some(0), None, None]);
        let st = RouteStats::of(&s, 2);
        assert_eq!((st.dropped, st.load.clone()), (1, vec![2, 1]));
    }

    #[test]
    fn second_choices_come_after_all_first_choices() {
        let r = Router::TokensChoice { k: 2, capacity_factor: 0.75, capacity_multiple_of: 1 }; // capacity ⌈2·4·0.75/2⌉ = 3
        let gates = [0.9, 0.1, 0.6, 0.4, 0.2, 0.8, 0.7, 0.3];
        let s = route(&r, &gates, 2);
        // Expert 0: first choices of tokens 0, 1, 3 take slots 0..3; token 2's second choice is dropped.
        assert_eq!([s[0], s[2], s[4], s[6]], [Some(0), Some(1), None, Some(2)]);
        // Expert 1: token 2 first (slot 0), then second choices of tokens 0 and 1.
        assert_eq!([s[5], s[1], s[3], s[7]], [Some(0), Some(1), Some(2), None]);
    }

    #[test]
    fn experts_choice_takes_the_largest_gates_with_ties_to_the_lower_token() {
        let r = Router::ExpertsChoice { capacity_factor: 1.0, capacity_multiple_of: 1 }; // capacity 2
        let gates = [0.5, 0.5, 0.5, 0.5, 0.9, 0.1, 0.2, 0.8];
        let s = route(&r, &gates, 2);
        assert_eq!([s[0], s[2], s[4], s[6]], [Some(1), None, Some(0), None]);
        assert_eq!([s[1], s[3], s[5], s[7]], [Some(1), None, None, Some(0)]);
        assert_eq!(RouteStats::of(&s, 2).dropped, 1);
    }

    #[test]
    fn experts_choice_ranks_match_the_pairwise_rule() {
        // Gates on a coarse grid, so that many tie; the sorted ranks must equal the count of `beats`.
        let (g, n) = (57, 5);
        let gates: Vec<f32> = (0..g * n).map(|i| ((i * 7919) % 13) as f32 / 13.0).collect();
        for (cf, mult) in [(0.3, 1), (1.0, 4), (2.5, 8)] {
            let r = Router::ExpertsChoice { capacity_factor: cf, capacity_multiple_of: mult };
            let cap = r.capacity(g, n);
            let s = route(&r, &gates, n);
            for e in 0..n {
                for t in 0..g {
                    let rank = (0..g).filter(|&u| beats(gates[u * n + e], u, gates[t * n + e], t)).count();
                    assert_eq!(s[t * n + e], (rank < cap).then_some(rank), "cf {cf}, token {t}, expert {e}");
                }
            }
        }
    }

    #[test]
    fn groups_cover_the_batch() {
        assert_eq!(groups(5, 3, 2), vec![0..6, 6..12, 12..15]);
        assert_eq!(groups(1, 49, 8), vec![0..49]);
    }

    #[test]
    fn capacity_above_the_group_size_takes_every_token_or_leaves_slots_empty() {
        // 3 tokens, 2 experts, capacity 4 (⌈3/2⌉ = 2 rounded up to 4).
        let gates = [0.9, 0.1, 0.6, 0.4, 0.2, 0.8];
        let ec = Router::experts_choice(1.0);
        assert_eq!(ec.capacity(3, 2), 4);
        let s = route(&ec, &gates, 2);
        assert_eq!(s, vec![Some(0), Some(2), Some(1), Some(1), Some(2), Some(0)]);
        assert_eq!(RouteStats::of(&s, 2).load, vec![3, 3]);
        let tc = Router::tokens_choice(1, 1.0);
        assert_eq!(route(&tc, &gates, 2), vec![Some(0), None, Some(1), None, None, Some(0)]);
    }

    #[test]
    fn validate_names_the_bad_parameter() {
        assert!(Router::tokens_choice(9, 1.0).validate(8).unwrap_err().to_string().contains("router_k"));
        assert!(Router::experts_choice(0.0).validate(8).unwrap_err().to_string().contains("capacity_factor"));
        let huge = Router::experts_choice(1.0).with_capacity_multiple_of(MAX_CAPACITY_MULTIPLE_OF + 1);
        assert!(huge.validate(8).unwrap_err().to_string().contains("capacity_multiple_of"));
        assert!(Router::experts_choice(1.0).with_capacity_multiple_of(0).validate(8).is_ok());
    }
}
