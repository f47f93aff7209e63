//! `sparse_route` on the CPU: the rules of `crate::routing` applied group by group.

use super::RouteShape;
use crate::routing::{route, Router};

/// Each (token, expert)'s slot for gates [rows, n] in groups of `s.group_tokens` tokens.
pub fn sparse_route<T: PartialOrd + Copy>(router: &Router, s: &RouteShape, gates: &[T]) -> Vec<Option<usize>> {
    let mut slots = Vec::with_capacity(s.rows * s.n);
    for start in (0..s.rows).step_by(s.group_tokens.max(1)) {
        let end = (start + s.group_tokens).min(s.rows);
        slots.extend(route(router, &gates[start * s.n..end * s.n], s.n));
    }
    slots
}
