//! The traffic path: `/<service>/<rest>` → a backend's `/<rest>`, chosen by weight.
//! Request bodies up to 1 MiB are read first (model requests are small JSON), so a request whose
//! replica refused the connection or broke it before answering can be retried on another one.
//! Responses stream back as they arrive: SSE tokens are never held back for more, though
//! frames that have already arrived together leave in one write (gather.rs). Upstream connections
//! are kept alive in a pool of our own (upstream.rs). Nothing is retried once a response has
//! started. A replica that keeps refusing connections is ejected for a while (ejection.rs);
//! `X-Rollout-Version` pins a request to one version (pinning.rs).

use std::collections::HashSet;
use std::convert::Infallible;
use std::error::Error as _;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, HOST, TRANSFER_ENCODING};
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Either, Full, Limited};
use hyper::body::Incoming;
use serde_json::json;

use crate::gather::{Gathered, Upstream};
use crate::log;
use crate::pinning::{resolve_pin, PIN_HEADER};
use crate::routes::Backend;
use crate::state::Shared;
use crate::stats::Outcome;
use crate::upstream::{Answer, Connection, UpstreamError};

/// Bodies up to this size are buffered (and retryable); larger or unsized ones stream.
const BUFFERED_BODY_BYTES: usize = 1024 * 1024;

/// Parsed once: a header removed or compared by name is then not parsed on every request.
static HOP_BY_HOP: [HeaderName; 10] = [
    http::header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    http::header::PROXY_AUTHENTICATE,
    http::header::PROXY_AUTHORIZATION,
    http::header::TE,
    http::header::TRAILER,
    http::header::TRANSFER_ENCODING,
    http::header::UPGRADE,
    http::header::HOST,
];
static X_ROLLOUT_REPLICA: HeaderName = HeaderName::from_static("x-rollout-replica");
static X_ROLLOUT_VERSION: HeaderName = HeaderName::from_static("x-rollout-version");
static X_ROLLOUT_ROUTER: HeaderName = HeaderName::from_static("x-rollout-router");
static X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");

pub type ClientBody = Either<ProxiedBody, Full<Bytes>>;

enum RequestBody {
    Buffered(Bytes),
    /// Taken by the first attempt: a streamed body cannot be sent twice.
    Streamed(Option<Incoming>),
}

pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<ClientBody>, Infallible> {
    Ok(route(shared, req).await)
}

async fn route(shared: Arc<Shared>, req: Request<Incoming>) -> Response<ClientBody> {
    let (parts, body) = req.into_parts();
    let Some((raw_service, path)) = split_service(parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/")) else {
        return json_error(StatusCode::NOT_FOUND, "no service in path: use /<service>/…");
    };
    let service: Arc<str> = decode_segment(raw_service).into();

    // The serving versions are only worked out for a request that pins one.
    let pin = {
        let routes = shared.routes();
        if !routes.has(&service) {
            return json_error(StatusCode::NOT_FOUND, &format!("unknown service \"{service}\""));
        }
        match parts.headers.get(PIN_HEADER) {
            None => None,
            Some(value) => match resolve_pin(value.to_str().unwrap_or(""), &routes.serving_versions(&service), &service) {
                Ok(version) => Some(version),
                Err(message) => return json_error(StatusCode::NOT_FOUND, &message),
            },
        }
    };

    // Small bodies (model requests) are read first, so a refused connection can be retried on
    // another replica; large or unsized bodies stream straight through (and are not retried).
    let declared = parts.headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let chunked = parts.headers.contains_key(TRANSFER_ENCODING);
    let mut body = if !chunked && declared.unwrap_or(0) <= BUFFERED_BODY_BYTES as u64 {
        match Limited::new(body, BUFFERED_BODY_BYTES).collect().await {
            Ok(collected) => RequestBody::Buffered(collected.to_bytes()),
            Err(err) => return json_error(StatusCode::BAD_REQUEST, &format!("request body: {err}")),
        }
    } else {
        RequestBody::Streamed(Some(body))
    };
    let buffered = matches!(body, RequestBody::Buffered(_));

    let mut tried: HashSet<Arc<str>> = HashSet::new();
    loop {
        let Some(backend) = pick(&shared, &service, pin, &tried) else {
            return if tried.is_empty() {
                json_error(StatusCode::SERVICE_UNAVAILABLE, &format!("no ready replicas for service {service}"))
            } else {
                json_error(StatusCode::BAD_GATEWAY, &format!("no replica of {service} accepted the connection (tried {})", tried.len()))
            };
        };
        tried.insert(backend.replica_id.clone());
        let upstream_body = match &mut body {
            RequestBody::Buffered(bytes) => Either::Left(Full::new(bytes.clone())),
            RequestBody::Streamed(incoming) => match incoming.take() {
                Some(incoming) => Either::Right(incoming),
                None => return json_error(StatusCode::BAD_GATEWAY, "the request body was already sent to a replica that failed"),
            },
        };
        let mut upstream = Request::new(upstream_body);
        *upstream.method_mut() = parts.method.clone();
        *upstream.headers_mut() = forward_headers(&parts.headers, buffered);
        upstream.headers_mut().insert(HOST, backend.target.host_header.clone());
        let uri = if backend.target.base_path.is_empty() { path.parse() } else { format!("{}{}", backend.target.base_path, path).parse() };
        match uri {
            Ok(uri) => *upstream.uri_mut() = uri,
            Err(_) => return json_error(StatusCode::BAD_REQUEST, "the request path is not a valid URI path"),
        }

        let attempt = Attempt::start(shared.clone(), service.clone(), backend.clone());
        let answer = match tokio::time::timeout(shared.upstream_timeout, shared.upstreams.send(&backend.target.authority, upstream)).await {
            Ok(answer) => answer,
            Err(_) => {
                // Not retried elsewhere: the replica may be working on it (a request must not run twice).
                attempt.finish_with_status(StatusCode::GATEWAY_TIMEOUT.as_u16());
                log::warn("replica did not answer in time", json!({ "service": &*service, "replica": &*backend.replica_id, "timeoutMs": shared.upstream_timeout.as_millis() as u64 }));
                return json_error(StatusCode::GATEWAY_TIMEOUT, &format!("replica {} sent no response within {} ms", backend.replica_id, shared.upstream_timeout.as_millis()));
            }
        };
        match answer {
            Ok(Answer { response, connection }) => {
                shared.ejections().answered(&backend.replica_id);
                return proxied_response(response, connection, attempt);
            }
            Err(err) if failed_before_answering(&err) => {
                attempt.finish(Outcome::ConnectError);
                shared.ejections().connect_failed(&backend.replica_id, Instant::now());
                log::warn("replica failed before answering; trying another", json!({ "service": &*service, "replica": &*backend.replica_id, "code": describe(&err) }));
                if matches!(body, RequestBody::Streamed(_)) {
                    return json_error(StatusCode::BAD_GATEWAY, &format!("replica {} refused the connection", backend.replica_id));
                }
            }
            Err(err) => {
                attempt.finish_with_status(StatusCode::BAD_GATEWAY.as_u16());
                log::warn("upstream request failed", json!({ "service": &*service, "replica": &*backend.replica_id, "err": describe(&err), "responseStarted": false }));
                return json_error(StatusCode::BAD_GATEWAY, &format!("replica {} failed: {}", backend.replica_id, describe(&err)));
            }
        }
    }
}

/// The next backend; ejected replicas are skipped unless nothing else is left.
fn pick(shared: &Shared, service: &str, pin: Option<i64>, tried: &HashSet<Arc<str>>) -> Option<Arc<Backend>> {
    let ejected = shared.ejections().ejected(Instant::now());
    let mut routes = shared.routes();
    let mut backend = None;
    if !ejected.is_empty() {
        let mut exclude = ejected;
        exclude.extend(tried.iter().cloned());
        backend = routes.pick(service, pin, &exclude);
    }
    backend.or_else(|| routes.pick(service, pin, tried))
}

/// `/<service>/<rest>?<query>` → (service segment, `/<rest>?<query>`).
fn split_service(path_and_query: &str) -> Option<(&str, String)> {
    let after = path_and_query.strip_prefix('/')?;
    let end = after.find(['/', '?']).unwrap_or(after.len());
    if end == 0 {
        return None;
    }
    let rest = &after[end..];
    let path = if rest.is_empty() {
        "/".to_string()
    } else if rest.starts_with('?') {
        format!("/{rest}")
    } else {
        rest.to_string()
    };
    Some((&after[..end], path))
}

/// A percent-encoded path segment (`my%20svc`), as the admin client encodes service names.
pub fn decode_segment(segment: &str) -> String {
    if !segment.contains('%') {
        return segment.to_string();
    }
    percent_encoding::percent_decode_str(segment).decode_utf8().map(|s| s.into_owned()).unwrap_or_else(|_| segment.to_string())
}

/// The request headers for the replica: hop-by-hop ones dropped (also those the client named in
/// `Connection`); the body's framing is left to the client library, which knows the body.
fn forward_headers(headers: &HeaderMap, buffered: bool) -> HeaderMap {
    // Usually just `keep-alive`, which names no header: nothing is allocated for it.
    let named: Vec<String> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.eq_ignore_ascii_case("keep-alive") && !t.eq_ignore_ascii_case("close"))
        .map(str::to_ascii_lowercase)
        .collect();
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        // `expect: 100-continue` was answered by us already when the body was read.
        if HOP_BY_HOP.contains(name) || name == CONTENT_LENGTH || (buffered && name == http::header::EXPECT) || named.iter().any(|t| t == name.as_str()) {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

fn proxied_response(response: Response<Incoming>, connection: Connection, mut attempt: Attempt) -> Response<ClientBody> {
    let (mut parts, body) = response.into_parts();
    attempt.answered(parts.status.as_u16());
    for name in &HOP_BY_HOP {
        parts.headers.remove(name);
    }
    let tags = &attempt.backend.tags;
    parts.headers.insert(X_ROLLOUT_REPLICA.clone(), tags.replica.clone());
    parts.headers.insert(X_ROLLOUT_VERSION.clone(), tags.version.clone());
    parts.headers.insert(X_ROLLOUT_ROUTER.clone(), crate::identity::header_value());
    // A proxy in front of this one (nginx) must not buffer token streams either.
    if parts.headers.get(CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream")) {
        parts.headers.insert(X_ACCEL_BUFFERING.clone(), HeaderValue::from_static("no"));
    }
    Response::from_parts(parts, Either::Left(ProxiedBody::new(body, connection, attempt)))
}

/// The replica failed before any response byte: refused, unreachable, or the connection broke (a
/// replica dying, a stale kept-alive socket). The replica may have seen the request, but it
/// produced nothing; a model request is safe to run again, and the design forbids dropping
/// requests because a replica went away.
fn failed_before_answering(err: &UpstreamError) -> bool {
    if matches!(err, UpstreamError::Connect(_)) {
        return true;
    }
    let mut source = err.source();
    while let Some(s) = source {
        if let Some(h) = s.downcast_ref::<hyper::Error>() {
            if h.is_incomplete_message() || h.is_canceled() || h.is_closed() {
                return true;
            }
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            if matches!(io.kind(), ConnectionRefused | ConnectionReset | ConnectionAborted | BrokenPipe | NotConnected) {
                return true;
            }
        }
        source = s.source();
    }
    false
}

/// An error and its causes on one line.
fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

pub fn json_error(status: StatusCode, message: &str) -> Response<ClientBody> {
    json_response(status, &json!({ "error": message })).map(Either::Right)
}

pub fn json_response(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(value.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// One attempt on one backend, counted in flight from dispatch until its response body is done
/// (or dropped: the client went away), then recorded once.
pub struct Attempt {
    shared: Arc<Shared>,
    service: Arc<str>,
    backend: Arc<Backend>,
    started: Instant,
    answer: Option<(u16, f64)>,
    recorded: bool,
}

impl Attempt {
    fn start(shared: Arc<Shared>, service: Arc<str>, backend: Arc<Backend>) -> Attempt {
        shared.stats().started(&service, backend.version, &backend.replica_id);
        Attempt { shared, service, backend, started: Instant::now(), answer: None, recorded: false }
    }

    fn answered(&mut self, status: u16) {
        self.answer = Some((status, self.started.elapsed().as_secs_f64()));
    }

    fn finish_with_status(mut self, status: u16) {
        self.answered(status);
        self.record();
    }

    fn finish(mut self, outcome: Outcome) {
        self.recorded = true;
        self.shared.stats().finished(&self.service, self.backend.version, &self.backend.replica_id, outcome);
    }

    fn record(&mut self) {
        if self.recorded {
            return;
        }
        self.recorded = true;
        let outcome = match self.answer {
            Some((status, ttfb_s)) => Outcome::Answered { status, ttfb_s, duration_s: self.started.elapsed().as_secs_f64() },
            None => Outcome::Abandoned,
        };
        self.shared.stats().finished(&self.service, self.backend.version, &self.backend.replica_id, outcome);
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.record();
    }
}

/// The replica's response body on its way to the client, data that is already there gathered into
/// one frame (gather.rs), its connection driven on this task meanwhile (link.rs); the attempt is recorded when the body ends, fails or is dropped (a client
/// that left mid-stream drops it, which also closes the upstream connection and so stops the
/// replica's work).
pub struct ProxiedBody {
    inner: Gathered<Incoming>,
    /// The connection it comes on: back to the pool once the body has been read to its end.
    connection: Option<Connection>,
    attempt: Attempt,
}

impl ProxiedBody {
    fn new(inner: Incoming, connection: Connection, attempt: Attempt) -> ProxiedBody {
        let mut body = ProxiedBody { inner: Gathered::new(inner), connection: Some(connection), attempt };
        // No body at all (HEAD, 204, 304): it is not polled.
        if body.inner.is_end_stream() {
            body.done(true);
        }
        body
    }

    /// The replica's body is over: the attempt is recorded, and the connection goes back to the
    /// pool if the body ended cleanly (else it is closed: HTTP/1 cannot reuse a connection whose
    /// response was cut).
    fn done(&mut self, cleanly: bool) {
        if let Some(connection) = self.connection.take() {
            if cleanly {
                self.attempt.shared.upstreams.put_back(&self.attempt.backend.target.authority, connection);
            }
        }
        self.attempt.record();
    }
}

impl Body for ProxiedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = {
            let connection = &this.connection;
            let _quiet = connection.as_ref().map(Connection::quiet);
            this.inner.poll_frame(cx, |cx| {
                if let Some(connection) = connection {
                    connection.drive(cx);
                }
            })
        };
        if let Poll::Ready(Some(Err(err))) = &polled {
            // A response had started: the client's connection is cut rather than the answer
            // pretending to be complete.
            log::warn("upstream response broke off", json!({ "service": &*self.attempt.service, "replica": &*self.attempt.backend.replica_id, "err": err.to_string(), "responseStarted": true }));
        }
        // Done as soon as the replica's body is over, though its last data may still be on its
        // way out with the end (the server stops polling a body that says it has ended).
        match self.inner.upstream() {
            Upstream::Open => {}
            Upstream::Ended => self.done(true),
            Upstream::Failed => self.done(false),
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_the_service_from_the_path() {
        let table = [
            ("/svc/v1/completions?stream=false", Some(("svc", "/v1/completions?stream=false"))),
            ("/svc", Some(("svc", "/"))),
            ("/svc/", Some(("svc", "/"))),
            ("/svc?x=1", Some(("svc", "/?x=1"))),
            ("/my%20svc/x", Some(("my%20svc", "/x"))),
            ("/", None),
            ("//x", None),
            ("/?x", None),
        ];
        for (input, want) in table {
            let got = split_service(input);
            assert_eq!(got.as_ref().map(|(s, p)| (*s, p.as_str())), want, "{input}");
        }
    }

    #[test]
    fn decodes_percent_encoded_service_names() {
        assert_eq!(decode_segment("my%20svc"), "my svc");
        assert_eq!(decode_segment("plain"), "plain");
        assert_eq!(decode_segment("bad%ff"), "bad%ff");
    }

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_dropped() {
        let mut h = HeaderMap::new();
        for (k, v) in [("connection", "keep-alive, X-Per-Hop"), ("x-per-hop", "1"), ("proxy-authorization", "Basic eA=="), ("authorization", "Bearer user"), ("host", "router"), ("content-length", "5"), ("expect", "100-continue"), ("x-request-id", "r1")] {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let out = forward_headers(&h, true);
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["authorization", "x-request-id"]);
        assert!(forward_headers(&h, false).contains_key("expect"), "a streamed body keeps expect-continue for the replica");
    }
}
