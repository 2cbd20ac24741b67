//! Passive health: a backend that refused connections `THRESHOLD` times in a row is left out of
//! rotation for a cooldown that doubles each time (1 s … 30 s); after it, one request may try it
//! again, and an answer clears the record.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

const THRESHOLD: u32 = 3;
const BASE_COOLDOWN: Duration = Duration::from_millis(1_000);
const MAX_COOLDOWN: Duration = Duration::from_millis(30_000);

struct Record {
    failures: u32,
    until: Option<Instant>,
    cooldown: Duration,
}

#[derive(Default)]
pub struct Ejections {
    state: HashMap<Arc<str>, Record>,
}

impl Ejections {
    pub fn connect_failed(&mut self, replica: &Arc<str>, now: Instant) {
        let r = self.state.entry(replica.clone()).or_insert(Record { failures: 0, until: None, cooldown: BASE_COOLDOWN / 2 });
        r.failures += 1;
        if r.failures >= THRESHOLD {
            r.cooldown = (r.cooldown * 2).min(MAX_COOLDOWN);
            r.until = Some(now + r.cooldown);
            r.failures = THRESHOLD - 1; // after the cooldown, one more refusal ejects again
        }
    }

    pub fn answered(&mut self, replica: &str) {
        if !self.state.is_empty() {
            self.state.remove(replica);
        }
    }

    /// Replica ids out of rotation right now.
    pub fn ejected(&self, now: Instant) -> HashSet<Arc<str>> {
        self.state.iter().filter(|(_, r)| r.until.is_some_and(|u| u > now)).map(|(id, _)| id.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ejected_after_three_refusals_with_a_doubling_cooldown() {
        let mut e = Ejections::default();
        let id: Arc<str> = Arc::from("r1");
        let t0 = Instant::now();
        e.connect_failed(&id, t0);
        e.connect_failed(&id, t0);
        assert!(e.ejected(t0).is_empty());
        e.connect_failed(&id, t0);
        assert!(e.ejected(t0).contains("r1"));
        assert!(e.ejected(t0 + Duration::from_millis(999)).contains("r1"));
        assert!(e.ejected(t0 + Duration::from_millis(1_001)).is_empty());
        // One more refusal after the cooldown ejects again, for twice as long.
        let t1 = t0 + Duration::from_millis(1_001);
        e.connect_failed(&id, t1);
        assert!(e.ejected(t1 + Duration::from_millis(1_999)).contains("r1"));
        assert!(e.ejected(t1 + Duration::from_millis(2_001)).is_empty());
        e.answered("r1");
        e.connect_failed(&id, t1);
        assert!(e.ejected(t1).is_empty(), "an answer clears the record");
    }

    #[test]
    fn cooldown_stops_at_thirty_seconds() {
        let mut e = Ejections::default();
        let id: Arc<str> = Arc::from("r1");
        let mut t = Instant::now();
        for _ in 0..20 {
            e.connect_failed(&id, t);
            t += Duration::from_secs(31);
        }
        let last = t - Duration::from_secs(31);
        assert!(e.ejected(last + Duration::from_millis(29_999)).contains("r1"));
        assert!(e.ejected(last + Duration::from_millis(30_001)).is_empty());
    }
}
