//! The admin API (its own port, loopback by default). Every route but /healthz needs
//! `Authorization: Bearer <token>`, compared in constant time.
//!
//!   PUT    /v1/services/:service/backends          {"backends": [...], "order"?: {"writer", "seq"}}
//!                                                   -> 200 {"backends", "applied"}
//!   GET    /v1/services/:service                   -> 200 {"backends", "stats", "order"?} | 404
//!   GET    /v1/services                            -> 200 {"services": {...}}
//!   GET    /v1/services/:service/inflight[?replica=<id>] -> 200 {"inflight"[, "byReplica"]}
//!   DELETE /v1/services/:service                   -> 204
//!   GET    /metrics                                -> Prometheus text
//!   GET    /healthz (no auth)                      -> 200 {"ok": true, "build", "pid"}
//!
//! In-flight counts include what a predecessor still drains after a handover (handover.rs).

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::log;
use crate::proxy::{decode_segment, json_response};
use crate::routes::{Backend, WriteOrder};
use crate::state::Shared;

/// A route table of a few hundred replicas is a few tens of KiB; anything far larger is a mistake.
const MAX_ADMIN_BODY_BYTES: usize = 4 * 1024 * 1024;

pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(route(&shared, req).await)
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json_response(status, &json!({ "error": message }))
}

async fn route(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    if path == "/healthz" {
        return json_response(StatusCode::OK, &json!({ "ok": true, "build": crate::identity::build(), "pid": std::process::id() }));
    }
    let given = req.headers().get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("");
    if !shared.token_matches(given) {
        return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
    }
    let method = req.method().clone();
    if path == "/metrics" && method == Method::GET {
        let text = shared.stats().exposition();
        let mut response = Response::new(Full::new(Bytes::from(text)));
        response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
        return response;
    }
    let Some((service, sub)) = parse_services_path(&path) else {
        return error(StatusCode::NOT_FOUND, &format!("no admin route {method} {path}"));
    };
    let Some(service) = service else {
        if method == Method::GET {
            let routes = shared.routes();
            return json_response(StatusCode::OK, &serde_json::to_value(routes.all()).unwrap_or(Value::Null));
        }
        return error(StatusCode::METHOD_NOT_ALLOWED, "use GET");
    };
    match (sub, &method) {
        (Some("backends"), &Method::PUT) => {
            let body = match Limited::new(req.into_body(), MAX_ADMIN_BODY_BYTES).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => return error(StatusCode::BAD_REQUEST, &format!("body is not JSON: longer than {MAX_ADMIN_BODY_BYTES} bytes")),
            };
            let parsed: Value = match serde_json::from_slice(if body.is_empty() { b"{}" } else { &body }) {
                Ok(v) => v,
                Err(e) => return error(StatusCode::BAD_REQUEST, &format!("body is not JSON: {e}")),
            };
            let backends = match validate_backends(&parsed) {
                Ok(b) => b,
                Err(problem) => return error(StatusCode::BAD_REQUEST, &problem),
            };
            let order = match validate_order(&parsed) {
                Ok(o) => o,
                Err(problem) => return error(StatusCode::BAD_REQUEST, &problem),
            };
            let mut routes = shared.routes();
            // Not applied (an older write of the same writer): 200 all the same, the table as it is.
            let applied = match routes.set(&service, backends, order) {
                Ok(applied) => applied,
                Err(e) => {
                    log::error("could not persist the route table", json!({ "err": e.to_string() }));
                    return error(StatusCode::INTERNAL_SERVER_ERROR, &format!("route table not persisted: {e}"));
                }
            };
            json_response(StatusCode::OK, &json!({ "backends": routes.backends(&service), "applied": applied }))
        }
        (Some("inflight"), &Method::GET) => {
            let replica = req.uri().query().and_then(|q| query_param(q, "replica")).filter(|r| !r.is_empty());
            match replica {
                Some(r) => json_response(StatusCode::OK, &json!({ "inflight": shared.inflight(&service, Some(&r)) })),
                None => {
                    let mut by_replica = shared.stats().inflight_by_replica(&service);
                    if let (Some(theirs), Value::Object(ours)) = (shared.predecessor_inflight().get(&service), &mut by_replica) {
                        for (replica, n) in theirs {
                            let sum = ours.get(replica).and_then(Value::as_u64).unwrap_or(0) + n;
                            ours.insert(replica.clone(), json!(sum));
                        }
                    }
                    json_response(StatusCode::OK, &json!({ "inflight": shared.inflight(&service, None), "byReplica": by_replica }))
                }
            }
        }
        (None, &Method::GET) => {
            let (backends, order) = {
                let routes = shared.routes();
                if !routes.has(&service) {
                    return error(StatusCode::NOT_FOUND, &format!("unknown service \"{service}\""));
                }
                (serde_json::to_value(routes.backends(&service)).unwrap_or(Value::Null), routes.order(&service).cloned())
            };
            let mut view = json!({ "backends": backends, "stats": shared.stats().by_version(&service) });
            if let Some(order) = order {
                view["order"] = json!(order);
            }
            json_response(StatusCode::OK, &view)
        }
        (None, &Method::DELETE) => {
            if let Err(e) = shared.routes().remove(&service) {
                return error(StatusCode::INTERNAL_SERVER_ERROR, &format!("route table not persisted: {e}"));
            }
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = StatusCode::NO_CONTENT;
            response
        }
        _ => error(StatusCode::METHOD_NOT_ALLOWED, &format!("method {method} not allowed on {path}")),
    }
}

/// `/v1/services[/<service>[/backends|/inflight]]` → (service, sub-resource).
fn parse_services_path(path: &str) -> Option<(Option<String>, Option<&str>)> {
    let rest = path.strip_prefix("/v1/services")?;
    if rest.is_empty() {
        return Some((None, None));
    }
    let rest = rest.strip_prefix('/')?;
    let (segment, sub) = match rest.split_once('/') {
        None => (rest, None),
        Some((segment, sub)) if sub == "backends" || sub == "inflight" => (segment, Some(sub)),
        Some(_) => return None,
    };
    if segment.is_empty() {
        return None;
    }
    Some((Some(decode_segment(segment)), sub))
}

/// One query parameter, decoded as a browser's URLSearchParams does (`+` is a space).
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == name).then(|| percent_encoding::percent_decode_str(&v.replace('+', " ")).decode_utf8_lossy().into_owned())
    })
}

/// The PUT body's optional `order`: `{"writer": non-empty string, "seq": integer ≥ 0}`.
fn validate_order(value: &Value) -> Result<Option<WriteOrder>, String> {
    let Some(order) = value.get("order").filter(|o| !o.is_null()) else { return Ok(None) };
    let writer = match order.get("writer") {
        Some(Value::String(w)) if !w.is_empty() => w.clone(),
        _ => return Err("order.writer: expected a non-empty string".into()),
    };
    let Some(seq) = order.get("seq").and_then(Value::as_u64) else { return Err("order.seq: expected an integer ≥ 0".into()) };
    Ok(Some(WriteOrder { writer, seq }))
}

/// The PUT body, checked field by field: the first problem names its field.
fn validate_backends(value: &Value) -> Result<Vec<Arc<Backend>>, String> {
    let Some(list) = value.get("backends").and_then(|b| b.as_array()) else {
        return Err("expected {\"backends\": [...]}".into());
    };
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(list.len());
    for (i, b) in list.iter().enumerate() {
        let replica_id = match b.get("replicaId").and_then(|v| v.as_str()) {
            Some(id) if !id.is_empty() => id,
            _ => return Err(format!("backends[{i}].replicaId: expected a non-empty string")),
        };
        // In-flight counts and the round-robin state are kept per replica id.
        if !seen.insert(replica_id) {
            return Err(format!("backends[{i}].replicaId: \"{replica_id}\" appears twice"));
        }
        let version = match b.get("version") {
            Some(Value::Number(n)) => n.as_i64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64)),
            _ => None,
        };
        let Some(version) = version else { return Err(format!("backends[{i}].version: expected an integer")) };
        let weight = b.get("weight").and_then(|v| v.as_f64()).filter(|w| *w >= 0.0);
        let Some(weight) = weight else { return Err(format!("backends[{i}].weight: expected a number ≥ 0")) };
        let backend = b.get("url").and_then(|v| v.as_str()).and_then(|url| Backend::new(Arc::from(replica_id), version, url.to_string(), weight));
        let Some(backend) = backend else {
            return Err(format!("backends[{i}].url: expected an http:// URL (replicas are reached over plain HTTP), got {}", b.get("url").unwrap_or(&Value::Null)));
        };
        out.push(Arc::new(backend));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_paths() {
        assert_eq!(parse_services_path("/v1/services"), Some((None, None)));
        assert_eq!(parse_services_path("/v1/services/my%20svc"), Some((Some("my svc".into()), None)));
        assert_eq!(parse_services_path("/v1/services/a/backends"), Some((Some("a".into()), Some("backends"))));
        assert_eq!(parse_services_path("/v1/services/a/inflight"), Some((Some("a".into()), Some("inflight"))));
        assert_eq!(parse_services_path("/v1/services/a/other"), None);
        assert_eq!(parse_services_path("/v1/services/"), None);
        assert_eq!(parse_services_path("/v1/servicesx"), None);
        assert_eq!(query_param("a=1&replica=r%201", "replica"), Some("r 1".into()));
        assert_eq!(query_param("replica=a+b", "replica"), Some("a b".into()));
    }

    #[test]
    fn backends_are_validated_field_by_field() {
        let ok = json!({ "backends": [{ "replicaId": "a", "version": 2.0, "url": "http://127.0.0.1:1", "weight": 0.5 }] });
        assert_eq!(validate_backends(&ok).unwrap()[0].version, 2);
        let table = [
            (json!([]), "expected {\"backends\": [...]}"),
            (json!({ "backends": [{ "replicaId": "", "version": 1, "url": "http://x", "weight": 1 }] }), "backends[0].replicaId: expected a non-empty string"),
            (
                json!({ "backends": [{ "replicaId": "a", "version": 1, "url": "http://x", "weight": 1 }, { "replicaId": "a", "version": 1, "url": "http://y", "weight": 1 }] }),
                "backends[1].replicaId: \"a\" appears twice",
            ),
            (json!({ "backends": [{ "replicaId": "a", "version": 1.5, "url": "http://x", "weight": 1 }] }), "backends[0].version: expected an integer"),
            (json!({ "backends": [{ "replicaId": "a", "version": "1", "url": "http://x", "weight": 1 }] }), "backends[0].version: expected an integer"),
            (json!({ "backends": [{ "replicaId": "a", "version": 1, "url": "http://x", "weight": -1 }] }), "backends[0].weight: expected a number ≥ 0"),
            (json!({ "backends": [{ "replicaId": "a", "version": 1, "url": "ftp://x", "weight": 1 }] }), "backends[0].url: expected an http:// URL (replicas are reached over plain HTTP), got \"ftp://x\""),
            (
                json!({ "backends": [{ "replicaId": "a", "version": 1, "url": "https://x", "weight": 1 }] }),
                "backends[0].url: expected an http:// URL (replicas are reached over plain HTTP), got \"https://x\"",
            ),
            (json!({ "backends": [{ "replicaId": "a", "version": 1, "weight": 1 }] }), "backends[0].url: expected an http:// URL (replicas are reached over plain HTTP), got null"),
        ];
        for (value, want) in table {
            assert_eq!(validate_backends(&value).err().as_deref(), Some(want), "{value}");
        }
    }

    #[test]
    fn orders_are_validated() {
        assert_eq!(validate_order(&json!({ "backends": [] })), Ok(None));
        assert_eq!(validate_order(&json!({ "order": null })), Ok(None));
        assert_eq!(validate_order(&json!({ "order": { "writer": "w", "seq": 4 } })), Ok(Some(WriteOrder { writer: "w".into(), seq: 4 })));
        for (value, want) in [
            (json!({ "order": { "seq": 1 } }), "order.writer: expected a non-empty string"),
            (json!({ "order": { "writer": "", "seq": 1 } }), "order.writer: expected a non-empty string"),
            (json!({ "order": { "writer": "w", "seq": -1 } }), "order.seq: expected an integer ≥ 0"),
            (json!({ "order": { "writer": "w", "seq": 1.5 } }), "order.seq: expected an integer ≥ 0"),
            (json!({ "order": { "writer": "w" } }), "order.seq: expected an integer ≥ 0"),
        ] {
            assert_eq!(validate_order(&value).err().as_deref(), Some(want), "{value}");
        }
    }
}
