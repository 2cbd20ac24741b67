//! Smooth weighted round-robin (nginx's algorithm): deterministic and evenly interleaved.
//! Weights 3:1 give a a b a | a a b a … never a long run of one backend.

use std::collections::HashSet;
use std::sync::Arc;

use crate::routes::Backend;

pub struct WeightedPicker {
    backends: Vec<Arc<Backend>>,
    current: Vec<f64>,
}

impl WeightedPicker {
    pub fn new(backends: Vec<Arc<Backend>>) -> Self {
        let current = vec![0.0; backends.len()];
        WeightedPicker { backends, current }
    }

    /// The next backend among those with weight > 0 and not in `exclude`, or None.
    pub fn pick(&mut self, exclude: &HashSet<Arc<str>>) -> Option<Arc<Backend>> {
        let mut total = 0.0;
        let mut best: Option<usize> = None;
        let mut best_score = f64::NEG_INFINITY;
        for (i, b) in self.backends.iter().enumerate() {
            if b.weight <= 0.0 || (!exclude.is_empty() && exclude.contains(&b.replica_id)) {
                continue;
            }
            self.current[i] += b.weight;
            total += b.weight;
            if self.current[i] > best_score {
                best_score = self.current[i];
                best = Some(i);
            }
        }
        let i = best?;
        self.current[i] -= total;
        Some(self.backends[i].clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(id: &str, weight: f64) -> Arc<Backend> {
        Arc::new(Backend::new(id.into(), 1, format!("http://127.0.0.1:1/{id}"), weight).unwrap())
    }

    fn sequence(picker: &mut WeightedPicker, n: usize, exclude: &HashSet<Arc<str>>) -> String {
        (0..n).map(|_| picker.pick(exclude).map(|b| b.replica_id.to_string()).unwrap_or_else(|| "-".into())).collect::<Vec<_>>().join("")
    }

    #[test]
    fn interleaves_by_weight() {
        let table: Vec<(Vec<(&str, f64)>, usize, &str)> = vec![
            (vec![("a", 3.0), ("b", 1.0)], 8, "aabaaaba"),
            (vec![("a", 1.0), ("b", 1.0)], 4, "abab"),
            (vec![("a", 5.0), ("b", 1.0), ("c", 1.0)], 7, "aabacaa"),
            (vec![("a", 0.0), ("b", 2.0)], 3, "bbb"),
            (vec![("a", 0.0)], 2, "--"),
            (vec![], 1, "-"),
        ];
        for (backends, n, want) in table {
            let mut picker = WeightedPicker::new(backends.iter().map(|(id, w)| backend(id, *w)).collect());
            assert_eq!(sequence(&mut picker, n, &HashSet::new()), want, "weights {backends:?}");
        }
    }

    #[test]
    fn shares_are_exact_over_a_whole_cycle() {
        // Over every combination of small integer weights, one cycle (the sum of the weights)
        // gives each backend exactly its weight.
        for wa in 0..6u32 {
            for wb in 0..6u32 {
                for wc in 0..6u32 {
                    let total = (wa + wb + wc) as usize;
                    let mut picker = WeightedPicker::new(vec![backend("a", wa as f64), backend("b", wb as f64), backend("c", wc as f64)]);
                    let seq = sequence(&mut picker, total.max(1) * 3, &HashSet::new());
                    if total == 0 {
                        assert!(seq.chars().all(|c| c == '-'));
                        continue;
                    }
                    for (id, w) in [('a', wa), ('b', wb), ('c', wc)] {
                        assert_eq!(seq.chars().filter(|c| *c == id).count(), 3 * w as usize, "weights {wa}/{wb}/{wc}: {seq}");
                    }
                }
            }
        }
    }

    #[test]
    fn excluded_backends_are_skipped() {
        let mut picker = WeightedPicker::new(vec![backend("a", 1.0), backend("b", 1.0)]);
        let exclude: HashSet<Arc<str>> = [Arc::from("a")].into_iter().collect();
        assert_eq!(sequence(&mut picker, 3, &exclude), "bbb");
        let all: HashSet<Arc<str>> = [Arc::from("a"), Arc::from("b")].into_iter().collect();
        assert_eq!(sequence(&mut picker, 1, &all), "-");
    }
}
