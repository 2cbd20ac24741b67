//! What the traffic and admin handlers share: the route table, statistics, ejections, the
//! upstream connection pools and the admin token's digest.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use sha2::{Digest, Sha256};

use crate::ejection::Ejections;
use crate::handover::Inflight;
use crate::routes::RouteStore;
use crate::stats::RouterStats;
use crate::upstream::Upstreams;

/// A request body on its way to a replica: read into memory (small, retryable) or streamed.
pub type UpstreamBody = Either<Full<Bytes>, Incoming>;

pub struct Shared {
    pub routes: Mutex<RouteStore>,
    pub stats: Mutex<RouterStats>,
    pub ejections: Mutex<Ejections>,
    /// What the process this one took over from still has in flight (it reports it until it exits).
    pub predecessor_inflight: Mutex<Inflight>,
    /// Kept-alive connections to the replicas.
    pub upstreams: Arc<Upstreams>,
    /// How long a replica may take to send its response headers.
    pub upstream_timeout: Duration,
    token_digest: [u8; 32],
}

impl Shared {
    pub fn new(routes: RouteStore, stats: RouterStats, token: &str, upstream_timeout: Duration) -> Arc<Shared> {
        let upstreams = Arc::new(Upstreams::default());
        upstreams.sweep_in_background();
        Arc::new(Shared {
            routes: Mutex::new(routes),
            stats: Mutex::new(stats),
            ejections: Mutex::new(Ejections::default()),
            predecessor_inflight: Mutex::new(Inflight::new()),
            upstreams,
            upstream_timeout,
            token_digest: Sha256::digest(token.as_bytes()).into(),
        })
    }

    /// Compared as SHA-256 digests in constant time: neither the token's length nor a common
    /// prefix shows in the timing.
    pub fn token_matches(&self, given: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        constant_time_eq::constant_time_eq_32(&digest, &self.token_digest)
    }

    pub fn routes(&self) -> MutexGuard<'_, RouteStore> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn stats(&self) -> MutexGuard<'_, RouterStats> {
        self.stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn predecessor_inflight(&self) -> MutexGuard<'_, Inflight> {
        self.predecessor_inflight.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// In flight to a service (or one of its replicas) here and in a predecessor still draining.
    pub fn inflight(&self, service: &str, replica: Option<&str>) -> u64 {
        let own = self.stats().inflight(service, replica);
        let predecessor = self.predecessor_inflight();
        let theirs = predecessor.get(service).map(|by_replica| match replica {
            Some(r) => by_replica.get(r).copied().unwrap_or(0),
            None => by_replica.values().sum(),
        });
        own + theirs.unwrap_or(0)
    }

    pub fn ejections(&self) -> MutexGuard<'_, Ejections> {
        self.ejections.lock().unwrap_or_else(|p| p.into_inner())
    }
}
