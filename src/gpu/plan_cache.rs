//! A small LRU of forward plans keyed by shape: built on first use, evicted plans free their buffers.

use std::sync::{Arc, Mutex};

pub struct PlanCache<K, P> {
    plans: Mutex<Vec<(K, Arc<P>)>>,
    capacity: usize,
}

impl<K: PartialEq + Copy, P> PlanCache<K, P> {
    pub fn new(capacity: usize) -> Self {
        PlanCache { plans: Mutex::new(Vec::new()), capacity: capacity.max(1) }
    }

    /// The plan for `key`, built with `build` when absent; the least recently used one goes first.
    pub fn get_or_build<E>(&self, key: K, build: impl FnOnce() -> Result<P, E>) -> Result<Arc<P>, E> {
        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = plans.iter().position(|(k, _)| *k == key) {
            let entry = plans.remove(i);
            let plan = entry.1.clone();
            plans.push(entry);
            return Ok(plan);
        }
        let plan = Arc::new(build()?);
        if plans.len() >= self.capacity {
            plans.remove(0);
        }
        plans.push((key, plan.clone()));
        Ok(plan)
    }

    /// How many plans are held.
    pub fn len(&self) -> usize {
        self.plans.lock().map(|p| p.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::PlanCache;

    #[test]
    fn keeps_at_most_capacity_and_evicts_the_least_recent() {
        let cache: PlanCache<u32, u32> = PlanCache::new(2);
        let mut builds = 0;
        for key in [1, 2, 1, 3, 1, 2] {
            cache
                .get_or_build::<()>(key, || {
                    builds += 1;
                    Ok(key * 10)
                })
                .unwrap();
        }
        // 1, 2 built; 1 hit; 3 built (evicts 2); 1 hit; 2 rebuilt.
        assert_eq!(builds, 4);
        assert_eq!(cache.len(), 2);
    }
}
