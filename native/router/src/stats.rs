//! Per-service, per-version statistics for canary analysis (admin JSON) and Prometheus
//! (`/metrics`): requests by status class, 5xx, connection errors, in-flight, latency and time to
//! first byte histograms. Quantiles in the JSON are estimated from the histogram buckets.
//!
//! The exposition is the Prometheus text format 0.0.4 with the names, label order and bucket
//! bounds the gateway's readers expect (src/router/traffic-counters.ts): written here rather than
//! through a metrics crate because the JSON quantiles need the raw bucket counts, and the
//! per-request cost is a few integer additions under one uncontended lock.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

pub const BUCKETS_S: [f64; 17] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];
const CODES: [&str; 6] = ["0xx", "1xx", "2xx", "3xx", "4xx", "5xx"];

#[derive(Clone, Default, Debug, PartialEq, Serialize, Deserialize)]
struct Histogram {
    /// Per bucket (not cumulative); the last is +Inf.
    counts: [u64; BUCKETS_S.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let i = BUCKETS_S.iter().position(|le| seconds <= *le).unwrap_or(BUCKETS_S.len());
        self.counts[i] += 1;
        self.sum += seconds;
        self.count += 1;
    }

    /// The q-quantile in ms, interpolated linearly inside the bucket that holds it; None without data.
    fn quantile_ms(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = q * self.count as f64;
        let (mut previous_le, mut cumulative) = (0.0, 0u64);
        for (i, in_bucket) in self.counts.iter().enumerate() {
            let next = cumulative + in_bucket;
            if next as f64 >= rank {
                let Some(le) = BUCKETS_S.get(i) else { return Some(previous_le * 1000.0) };
                let fraction = if *in_bucket == 0 { 1.0 } else { (rank - cumulative as f64) / *in_bucket as f64 };
                return Some((previous_le + (le - previous_le) * fraction) * 1000.0);
            }
            cumulative = next;
            previous_le = BUCKETS_S.get(i).copied().unwrap_or(previous_le);
        }
        Some(previous_le * 1000.0)
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct VersionEntry {
    service: String,
    version: i64,
    requests: u64,
    errors_5xx: u64,
    connect_errors: u64,
    /// This process's own; a handover does not carry it (the old process reports its own).
    #[serde(skip)]
    inflight: i64,
    by_code: [u64; 6],
    /// Status classes seen, in the order first seen (exposition order).
    codes_seen: Vec<usize>,
    latency: Histogram,
    ttfb: Histogram,
}

/// How one attempt on a backend ended.
pub enum Outcome {
    /// Answered with this status: timings from dispatch to the headers and to the end.
    Answered { status: u16, ttfb_s: f64, duration_s: f64 },
    /// Refused or broken before any answer (retried elsewhere when possible).
    ConnectError,
    /// The client went away before an answer: only the in-flight count changes.
    Abandoned,
}

/// The counters (not the in-flight gauges) as a new process takes them over at a handover, so
/// that cumulative counters never go down (canary analysis reads their differences).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StatsSnapshot(Vec<VersionEntry>);

#[derive(Default)]
pub struct RouterStats {
    /// Entries in the order first seen; `index` finds one by service and version.
    entries: Vec<VersionEntry>,
    index: HashMap<String, HashMap<i64, usize>>,
    inflight_by_replica: HashMap<String, HashMap<Arc<str>, u64>>,
}

impl RouterStats {
    /// Counters that go on from a predecessor's.
    pub fn restore(snapshot: StatsSnapshot) -> RouterStats {
        let mut stats = RouterStats::default();
        for mut entry in snapshot.0 {
            entry.inflight = 0;
            let by_version = stats.index.entry(entry.service.clone()).or_default();
            if by_version.contains_key(&entry.version) {
                continue;
            }
            by_version.insert(entry.version, stats.entries.len());
            stats.entries.push(entry);
        }
        stats
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot(self.entries.clone())
    }

    /// In-flight requests per service and replica.
    pub fn inflight_all(&self) -> std::collections::BTreeMap<String, std::collections::BTreeMap<String, u64>> {
        self.inflight_by_replica
            .iter()
            .filter(|(_, replicas)| !replicas.is_empty())
            .map(|(service, replicas)| (service.clone(), replicas.iter().map(|(r, n)| (r.to_string(), *n)).collect()))
            .collect()
    }

    fn entry(&mut self, service: &str, version: i64) -> &mut VersionEntry {
        let by_version = match self.index.get_mut(service) {
            Some(v) => v,
            None => self.index.entry(service.to_string()).or_default(),
        };
        let i = *by_version.entry(version).or_insert_with(|| {
            self.entries.push(VersionEntry {
                service: service.to_string(),
                version,
                requests: 0,
                errors_5xx: 0,
                connect_errors: 0,
                inflight: 0,
                by_code: [0; 6],
                codes_seen: Vec::new(),
                latency: Histogram::default(),
                ttfb: Histogram::default(),
            });
            self.entries.len() - 1
        });
        &mut self.entries[i]
    }

    pub fn started(&mut self, service: &str, version: i64, replica: &Arc<str>) {
        self.entry(service, version).inflight += 1;
        let by_replica = match self.inflight_by_replica.get_mut(service) {
            Some(m) => m,
            None => self.inflight_by_replica.entry(service.to_string()).or_default(),
        };
        *by_replica.entry(replica.clone()).or_insert(0) += 1;
    }

    pub fn finished(&mut self, service: &str, version: i64, replica: &str, outcome: Outcome) {
        let e = self.entry(service, version);
        e.inflight -= 1;
        match outcome {
            Outcome::ConnectError => e.connect_errors += 1,
            Outcome::Abandoned => {}
            Outcome::Answered { status, ttfb_s, duration_s } => {
                e.requests += 1;
                if status >= 500 {
                    e.errors_5xx += 1;
                }
                let class = usize::from(status / 100).min(5);
                if e.by_code[class] == 0 {
                    e.codes_seen.push(class);
                }
                e.by_code[class] += 1;
                e.latency.observe(duration_s);
                e.ttfb.observe(ttfb_s);
            }
        }
        if let Some(by_replica) = self.inflight_by_replica.get_mut(service) {
            if let Some(n) = by_replica.get_mut(replica) {
                *n -= 1;
                if *n == 0 {
                    by_replica.remove(replica);
                }
            }
        }
    }

    pub fn inflight(&self, service: &str, replica: Option<&str>) -> u64 {
        let Some(by_replica) = self.inflight_by_replica.get(service) else { return 0 };
        match replica {
            Some(r) => by_replica.get(r).copied().unwrap_or(0),
            None => by_replica.values().sum(),
        }
    }

    pub fn inflight_by_replica(&self, service: &str) -> Value {
        let mut out = Map::new();
        for (replica, n) in self.inflight_by_replica.get(service).into_iter().flatten() {
            out.insert(replica.to_string(), json!(n));
        }
        Value::Object(out)
    }

    /// `{ "<version>": { requests, errors5xx, connectErrors, inflight, latencyMs, ttfbMs } }`.
    pub fn by_version(&self, service: &str) -> Value {
        let mut out = Map::new();
        for e in self.entries.iter().filter(|e| e.service == service) {
            let q = |h: &Histogram| json!({ "p50": h.quantile_ms(0.5), "p99": h.quantile_ms(0.99) });
            out.insert(
                e.version.to_string(),
                json!({
                    "requests": e.requests,
                    "errors5xx": e.errors_5xx,
                    "connectErrors": e.connect_errors,
                    "inflight": e.inflight,
                    "latencyMs": q(&e.latency),
                    "ttfbMs": q(&e.ttfb),
                }),
            );
        }
        Value::Object(out)
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn exposition(&self) -> String {
        let mut out = String::with_capacity(4096 + self.entries.len() * 4096);
        let labels = |e: &VersionEntry| format!("service=\"{}\",version=\"{}\"", escape(&e.service), e.version);

        header(&mut out, "rollout_router_requests_total", "Requests answered, by service, version and status class", "counter");
        for e in &self.entries {
            for &class in &e.codes_seen {
                let _ = writeln!(out, "rollout_router_requests_total{{{},code=\"{}\"}} {}", labels(e), CODES[class], e.by_code[class]);
            }
        }
        out.push('\n');
        header(&mut out, "rollout_router_connect_errors_total", "Requests a replica refused or broke off before answering (retried on another replica)", "counter");
        for e in &self.entries {
            let _ = writeln!(out, "rollout_router_connect_errors_total{{{}}} {}", labels(e), e.connect_errors);
        }
        out.push('\n');
        header(&mut out, "rollout_router_inflight", "Requests in flight", "gauge");
        for e in &self.entries {
            let _ = writeln!(out, "rollout_router_inflight{{{}}} {}", labels(e), e.inflight);
        }
        out.push('\n');
        type HistogramOf = fn(&VersionEntry) -> &Histogram;
        let histograms: [(&str, &str, HistogramOf); 2] = [
            ("rollout_router_request_duration_seconds", "Time from dispatch to the end of the response", |e| &e.latency),
            ("rollout_router_time_to_first_byte_seconds", "Time from dispatch to the response headers (first token for streams)", |e| &e.ttfb),
        ];
        for (name, help, histogram_of) in histograms {
            header(&mut out, name, help, "histogram");
            for e in &self.entries {
                let h = histogram_of(e);
                let l = labels(e);
                let mut cumulative = 0;
                for (i, n) in h.counts.iter().enumerate() {
                    cumulative += n;
                    let le = BUCKETS_S.get(i).map(|b| b.to_string()).unwrap_or_else(|| "+Inf".to_string());
                    let _ = writeln!(out, "{name}_bucket{{le=\"{le}\",{l}}} {cumulative}");
                }
                let _ = writeln!(out, "{name}_sum{{{l}}} {}", h.sum);
                let _ = writeln!(out, "{name}_count{{{l}}} {}", h.count);
            }
            out.push('\n');
        }
        out
    }
}

fn header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value as the text format wants it: backslash, double quote and newline escaped.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status: u16, seconds: f64) -> Outcome {
        Outcome::Answered { status, ttfb_s: seconds / 2.0, duration_s: seconds }
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile_ms(0.5), None);
        for _ in 0..5 {
            h.observe(0.0002); // (0, 0.5 ms]
        }
        h.observe(0.4); // (250, 500 ms]
        let p50 = h.quantile_ms(0.5).unwrap();
        assert!(p50 > 0.0 && p50 <= 0.5, "{p50}");
        let p99 = h.quantile_ms(0.99).unwrap();
        assert!((250.0..=500.0).contains(&p99), "{p99}");
        let mut slow = Histogram::default();
        slow.observe(1000.0); // beyond the last bound: the last finite bound
        assert_eq!(slow.quantile_ms(0.99), Some(300_000.0));
    }

    #[test]
    fn counts_per_version_and_replica() {
        let mut s = RouterStats::default();
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        s.started("svc", 1, &a);
        s.started("svc", 1, &a);
        s.started("svc", 2, &b);
        assert_eq!((s.inflight("svc", None), s.inflight("svc", Some("a")), s.inflight("other", None)), (3, 2, 0));
        s.finished("svc", 1, "a", answered(200, 0.001));
        s.finished("svc", 1, "a", Outcome::ConnectError);
        s.finished("svc", 2, "b", answered(503, 0.002));
        assert_eq!(s.inflight("svc", None), 0);
        assert_eq!(s.inflight_by_replica("svc"), json!({}));
        let v = s.by_version("svc");
        assert_eq!(v["1"]["requests"], 1);
        assert_eq!(v["1"]["connectErrors"], 1);
        assert_eq!(v["2"]["errors5xx"], 1);
        assert_eq!(v["2"]["inflight"], 0);
    }

    #[test]
    fn counters_go_on_from_a_snapshot_without_the_inflight_gauge() {
        let mut s = RouterStats::default();
        let r: Arc<str> = Arc::from("r");
        for status in [200, 503] {
            s.started("svc", 2, &r);
            s.finished("svc", 2, "r", answered(status, 0.01));
        }
        s.started("svc", 2, &r); // still in flight at the handover
        let wire = serde_json::to_string(&s.snapshot()).unwrap();
        assert!(!wire.contains("inflight"), "{wire}");
        let mut next = RouterStats::restore(serde_json::from_str(&wire).unwrap());
        assert_eq!(next.inflight("svc", None), 0);
        next.started("svc", 2, &r);
        next.finished("svc", 2, "r", answered(200, 0.01));
        let v = next.by_version("svc");
        assert_eq!((v["2"]["requests"].as_u64(), v["2"]["errors5xx"].as_u64(), v["2"]["inflight"].as_i64()), (Some(3), Some(1), Some(0)));
        assert!(next.exposition().contains("rollout_router_requests_total{service=\"svc\",version=\"2\",code=\"2xx\"} 2\n"));
        assert_eq!(s.inflight_all(), std::collections::BTreeMap::from([("svc".to_string(), std::collections::BTreeMap::from([("r".to_string(), 1)]))]));
    }

    #[test]
    fn exposition_names_labels_and_buckets() {
        let mut s = RouterStats::default();
        let r: Arc<str> = Arc::from("r");
        for status in [200, 200, 502] {
            s.started("my \"svc\"", 3, &r);
            s.finished("my \"svc\"", 3, "r", answered(status, 0.3));
        }
        let text = s.exposition();
        assert!(text.contains("rollout_router_requests_total{service=\"my \\\"svc\\\"\",version=\"3\",code=\"2xx\"} 2\n"), "{text}");
        assert!(text.contains("rollout_router_requests_total{service=\"my \\\"svc\\\"\",version=\"3\",code=\"5xx\"} 1\n"));
        assert!(text.contains("rollout_router_request_duration_seconds_bucket{le=\"0.25\",service=\"my \\\"svc\\\"\",version=\"3\"} 0\n"));
        assert!(text.contains("rollout_router_request_duration_seconds_bucket{le=\"0.5\",service=\"my \\\"svc\\\"\",version=\"3\"} 3\n"));
        assert!(text.contains("rollout_router_time_to_first_byte_seconds_bucket{le=\"+Inf\",service=\"my \\\"svc\\\"\",version=\"3\"} 3\n"));
        assert!(text.contains("rollout_router_request_duration_seconds_count{service=\"my \\\"svc\\\"\",version=\"3\"} 3\n"));
        assert!(text.contains("# TYPE rollout_router_inflight gauge\nrollout_router_inflight{service=\"my \\\"svc\\\"\",version=\"3\"} 0\n"));
    }
}
