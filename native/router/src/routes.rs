//! The routing table, persisted atomically (temp file + rename) so a restart resumes the same
//! split. Backends are replaced per service at once; requests in flight keep the backend they have.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use http::{HeaderValue, Uri};
use serde::{Deserialize, Serialize};

use crate::picker::WeightedPicker;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", try_from = "BackendRecord")]
pub struct Backend {
    pub replica_id: Arc<str>,
    pub version: i64,
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// Relative weight; 0 = out of rotation (draining).
    #[serde(serialize_with = "whole_numbers_plain")]
    pub weight: f64,
    /// `url` parsed once, when the backend is accepted (not on every request).
    #[serde(skip_serializing)]
    pub target: Target,
    /// The response headers that say who answered, made once.
    #[serde(skip_serializing)]
    pub tags: Tags,
}

/// `X-Rollout-Replica` and `X-Rollout-Version` of a backend's responses.
#[derive(Debug, Clone, PartialEq)]
pub struct Tags {
    pub replica: HeaderValue,
    pub version: HeaderValue,
}

impl Backend {
    /// None when `url` is not a plain `http://` URL.
    pub fn new(replica_id: Arc<str>, version: i64, url: String, weight: f64) -> Option<Backend> {
        let target = Target::parse(&url)?;
        let tags = Tags { replica: HeaderValue::from_str(&replica_id).unwrap_or(HeaderValue::from_static("?")), version: HeaderValue::from(version) };
        Some(Backend { replica_id, version, url, weight, target, tags })
    }
}

/// A backend as routes.json holds it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BackendRecord {
    replica_id: Arc<str>,
    version: i64,
    url: String,
    weight: f64,
}

impl TryFrom<BackendRecord> for Backend {
    type Error = String;
    fn try_from(r: BackendRecord) -> Result<Backend, String> {
        let url = r.url.clone();
        Backend::new(r.replica_id, r.version, r.url, r.weight).ok_or_else(|| format!("url: expected an http:// URL, got {url:?}"))
    }
}

/// `1`, not `1.0`, for the whole weights everyone uses (in routes.json and the admin API), as
/// the TypeScript side writes them.
fn whole_numbers_plain<S: serde::Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.fract() == 0.0 && value.abs() < 9.0e15 {
        serializer.serialize_i64(*value as i64)
    } else {
        serializer.serialize_f64(*value)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceRoute {
    pub backends: Vec<Arc<Backend>>,
    /// The last ordered write this table took (see `RouteStore::set`); absent when none was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<WriteOrder>,
}

/// An ordered write's place: its writer (one rollout) and the writer's sequence number. A
/// rollout's traffic changes ride on several activities that may run, or be retried, out of
/// order; the router keeps only the newest of each writer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteOrder {
    pub writer: String,
    pub seq: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RouteTable {
    pub services: BTreeMap<String, ServiceRoute>,
}

/// Where a backend's requests go: its address (`host:port`, also the Host header sent) and the
/// base path its URL carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub authority: String,
    pub host_header: HeaderValue,
    pub base_path: String,
}

impl Target {
    pub fn parse(url: &str) -> Option<Target> {
        let uri: Uri = url.parse().ok()?;
        // Plain HTTP only: the connector speaks no TLS, and replicas sit on a private network.
        let scheme = uri.scheme_str()?;
        if scheme != "http" {
            return None;
        }
        // Any user info (`user:pass@`) is not part of the address.
        let authority = uri.authority()?.as_str().rsplit('@').next()?.to_string();
        let host_header = HeaderValue::from_str(&authority).ok()?;
        Some(Target { authority, host_header, base_path: uri.path().trim_end_matches('/').to_string() })
    }
}

pub struct RouteStore {
    table: RouteTable,
    state_path: Option<PathBuf>,
    /// Per service, or per (service, pinned version).
    pickers: HashMap<String, HashMap<Option<i64>, WeightedPicker>>,
}

impl RouteStore {
    /// A table we cannot read stops the router: starting empty would send every service 404.
    pub fn open(state_path: Option<PathBuf>) -> Result<RouteStore, String> {
        let mut table = RouteTable::default();
        if let Some(path) = &state_path {
            if path.exists() {
                let text = std::fs::read_to_string(path).map_err(|e| format!("router state {} is unreadable ({e}); fix or delete it", path.display()))?;
                let value: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| format!("router state {} is unreadable ({e}); fix or delete it", path.display()))?;
                if !value.get("services").is_some_and(|s| s.is_object()) {
                    return Err(format!("router state {} has no \"services\" object; fix or delete it", path.display()));
                }
                table = serde_json::from_value(value).map_err(|e| format!("router state {} is unreadable ({e}); fix or delete it", path.display()))?;
            }
        }
        Ok(RouteStore { table, state_path, pickers: HashMap::new() })
    }

    /// The table a predecessor handed over (what it persisted), written to our own state file.
    pub fn adopt(table: RouteTable, state_path: Option<PathBuf>) -> Result<RouteStore, String> {
        let store = RouteStore { table, state_path, pickers: HashMap::new() };
        store.persist().map_err(|e| format!("router state {}: cannot write it ({e})", store.state_path.as_ref().map(|p| p.display().to_string()).unwrap_or_default()))?;
        Ok(store)
    }

    pub fn has(&self, service: &str) -> bool {
        self.table.services.contains_key(service)
    }

    pub fn backends(&self, service: &str) -> &[Arc<Backend>] {
        self.table.services.get(service).map(|s| s.backends.as_slice()).unwrap_or(&[])
    }

    pub fn all(&self) -> &RouteTable {
        &self.table
    }

    /// The next backend of a service (or of one of its versions), skipping `exclude`.
    pub fn pick(&mut self, service: &str, version: Option<i64>, exclude: &HashSet<Arc<str>>) -> Option<Arc<Backend>> {
        let backends = &self.table.services.get(service)?.backends;
        let by_version = match self.pickers.get_mut(service) {
            Some(p) => p,
            None => self.pickers.entry(service.to_string()).or_default(),
        };
        by_version
            .entry(version)
            .or_insert_with(|| WeightedPicker::new(backends.iter().filter(|b| version.is_none_or(|v| b.version == v)).cloned().collect()))
            .pick(exclude)
    }

    /// Versions that receive traffic, oldest first: the first is the primary, the last the canary.
    pub fn serving_versions(&self, service: &str) -> Vec<i64> {
        let mut versions: Vec<i64> = self.backends(service).iter().filter(|b| b.weight > 0.0).map(|b| b.version).collect();
        versions.sort_unstable();
        versions.dedup();
        versions
    }

    /**
     * Replaces a service's backends, unless `order` is from the writer of the last ordered write
     * and not newer than it (a retried or delayed older change): then nothing changes and the
     * answer is `false`. An unordered write always applies and keeps the last order, so that a
     * rollout's late, older write still loses to its newer one.
     */
    pub fn set(&mut self, service: &str, backends: Vec<Arc<Backend>>, order: Option<WriteOrder>) -> std::io::Result<bool> {
        let last = self.table.services.get(service).and_then(|s| s.order.clone());
        if let (Some(new), Some(last)) = (&order, &last) {
            if new.writer == last.writer && new.seq <= last.seq {
                return Ok(false);
            }
        }
        self.table.services.insert(service.to_string(), ServiceRoute { backends, order: order.or(last) });
        self.pickers.remove(service);
        self.persist()?;
        Ok(true)
    }

    /// The last ordered write a service's table took.
    pub fn order(&self, service: &str) -> Option<&WriteOrder> {
        self.table.services.get(service).and_then(|s| s.order.as_ref())
    }

    pub fn remove(&mut self, service: &str) -> std::io::Result<()> {
        self.table.services.remove(service);
        self.pickers.remove(service);
        self.persist()
    }

    fn persist(&self) -> std::io::Result<()> {
        let Some(path) = &self.state_path else { return Ok(()) };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = PathBuf::from(format!("{}.{}.tmp", path.display(), std::process::id()));
        let text = serde_json::to_string_pretty(&self.table).map_err(std::io::Error::other)?;
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(id: &str, version: i64, weight: f64) -> Arc<Backend> {
        Arc::new(Backend::new(id.into(), version, format!("http://127.0.0.1:9/{id}/"), weight).unwrap())
    }

    #[test]
    fn targets_keep_the_base_path() {
        let t = Target::parse("http://127.0.0.1:8000/base/").unwrap();
        assert_eq!((t.authority.as_str(), t.base_path.as_str()), ("127.0.0.1:8000", "/base"));
        assert_eq!(t.host_header, "127.0.0.1:8000");
        let t = Target::parse("http://[::1]:8000").unwrap();
        assert_eq!((t.authority.as_str(), t.base_path.as_str()), ("[::1]:8000", ""));
        let t = Target::parse("http://user:secret@replica:81/").unwrap();
        assert_eq!((t.authority.as_str(), t.base_path.as_str()), ("replica:81", ""));
        assert!(Target::parse("ftp://x").is_none());
        assert!(Target::parse("https://x").is_none());
        assert!(Target::parse("not a url").is_none());
    }

    #[test]
    fn whole_weights_are_written_without_a_fraction() {
        let text = serde_json::to_string(&[backend("a", 1, 3.0), backend("b", 1, 0.5)]).unwrap();
        assert!(text.contains("\"weight\":3}") && text.contains("\"weight\":0.5}"), "{text}");
    }

    #[test]
    fn serving_versions_and_pinned_picks() {
        let mut store = RouteStore::open(None).unwrap();
        store.set("svc", vec![backend("a", 2, 1.0), backend("b", 1, 3.0), backend("c", 3, 0.0)], None).unwrap();
        assert_eq!(store.serving_versions("svc"), vec![1, 2]);
        let none = HashSet::new();
        for _ in 0..4 {
            assert_eq!(&*store.pick("svc", Some(2), &none).unwrap().replica_id, "a");
        }
        assert!(store.pick("svc", Some(3), &none).is_none(), "weight 0 takes no traffic even when pinned");
        assert!(store.pick("nope", None, &none).is_none());
    }

    #[test]
    fn a_writers_older_changes_never_overwrite_its_newer_one() {
        let mut store = RouteStore::open(None).unwrap();
        let order = |writer: &str, seq: u64| Some(WriteOrder { writer: writer.into(), seq });
        let ids = |store: &RouteStore| store.backends("s").iter().map(|b| b.replica_id.to_string()).collect::<Vec<_>>();
        assert!(store.set("s", vec![backend("a", 1, 1.0)], order("r1", 2)).unwrap());
        assert!(!store.set("s", vec![backend("b", 1, 1.0)], order("r1", 1)).unwrap(), "older: refused");
        assert!(!store.set("s", vec![backend("b", 1, 1.0)], order("r1", 2)).unwrap(), "the same again (a retry): already applied");
        assert_eq!(ids(&store), ["a"]);
        assert!(store.set("s", vec![backend("c", 1, 1.0)], None).unwrap(), "unordered: always applies");
        assert_eq!(store.order("s"), Some(&WriteOrder { writer: "r1".into(), seq: 2 }), "and keeps the last order");
        assert!(!store.set("s", vec![backend("b", 1, 1.0)], order("r1", 1)).unwrap(), "so a late older write still loses");
        assert_eq!(ids(&store), ["c"]);
        assert!(store.set("s", vec![backend("d", 2, 1.0)], order("r2", 1)).unwrap(), "another writer (the next rollout) starts afresh");
        assert!(store.set("s", vec![backend("e", 2, 1.0)], order("r2", 5)).unwrap());
        assert_eq!(ids(&store), ["e"]);
    }

    #[test]
    fn persisted_atomically_and_reloaded() {
        let dir = std::env::temp_dir().join(format!("rollout-router-test-{}", std::process::id()));
        let path = dir.join("state").join("routes.json");
        let _ = std::fs::remove_dir_all(&dir);
        let mut store = RouteStore::open(Some(path.clone())).unwrap();
        store.set("a", vec![backend("a1", 1, 1.0)], None).unwrap();
        store.set("b", vec![backend("b1", 4, 2.0)], Some(WriteOrder { writer: "w".into(), seq: 3 })).unwrap();
        store.remove("a").unwrap();
        let files: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(files, vec![std::ffi::OsString::from("routes.json")]);
        let again = RouteStore::open(Some(path.clone())).unwrap();
        assert_eq!(again.backends("b"), &[backend("b1", 4, 2.0)]);
        assert_eq!(again.order("b"), Some(&WriteOrder { writer: "w".into(), seq: 3 }), "the order survives a restart");
        assert!(!again.has("a"));
        std::fs::write(&path, "{\"services\": {").unwrap();
        assert!(RouteStore::open(Some(path.clone())).err().unwrap().contains("routes.json is unreadable"));
        std::fs::write(&path, r#"{"services": {"s": {"backends": [{"replicaId": "a", "version": 1, "url": "https://x", "weight": 1}]}}}"#).unwrap();
        assert!(RouteStore::open(Some(path.clone())).err().unwrap().contains("url: expected an http:// URL"));
        std::fs::write(&path, "[]").unwrap();
        assert!(RouteStore::open(Some(path)).err().unwrap().contains("has no \"services\" object"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
