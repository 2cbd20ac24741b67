//! Serving one listening socket: an accept loop that can be stopped (and hands its listener back,
//! for a handover that fails and has to resume), and the set of connections it accepted, which can
//! be drained without resetting anyone.
//!
//! Draining never closes a connection under a request that may be on its way. Once it starts:
//!   - every response that has not started yet carries `Connection: close`, so the client opens its
//!     next request on a new connection (the listening socket, now someone else's or closed);
//!   - a connection is closed by us only once it has been idle for `linger` (a client that was about
//!     to reuse it has done so by then, and got `Connection: close`); a stream that began before the
//!     drain runs to its end first.
//!
//! With a linger of 0 (the admin port at a handover) idle connections close at once and busy ones
//! right after their response.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderValue, CONNECTION};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

use crate::log;

const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(65);

/// The connections one listener accepted: how many are open, and the drain order they watch.
#[derive(Clone)]
struct Connections {
    /// None: serving normally; Some(linger): draining.
    drain: Arc<watch::Sender<Option<Duration>>>,
    open: Arc<watch::Sender<usize>>,
}

impl Connections {
    fn new() -> Connections {
        Connections { drain: Arc::new(watch::channel(None).0), open: Arc::new(watch::channel(0).0) }
    }
}

/// A listener being served (or stopped), and its connections.
pub struct Server {
    name: &'static str,
    connections: Connections,
    accepting: Option<(watch::Sender<bool>, JoinHandle<TcpListener>)>,
    spawn_loop: Box<dyn Fn(TcpListener, watch::Receiver<bool>, Connections) -> JoinHandle<TcpListener> + Send>,
}

impl Server {
    /// Starts accepting on `listener`; each request goes to `handler`.
    pub fn start<F, Fut, B>(name: &'static str, listener: TcpListener, handler: F) -> Server
    where
        F: Fn(hyper::Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Result<hyper::Response<B>, std::convert::Infallible>> + Send + 'static,
        B: Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let spawn_loop = Box::new(move |listener: TcpListener, stop: watch::Receiver<bool>, connections: Connections| {
            tokio::spawn(accept_loop(name, listener, stop, connections, handler.clone()))
        });
        let mut server = Server { name, connections: Connections::new(), accepting: None, spawn_loop };
        server.resume(listener);
        server
    }

    /// Accepts again on `listener` (a handover that did not happen); connections accepted from now
    /// on are served normally.
    pub fn resume(&mut self, listener: TcpListener) {
        self.connections.drain.send_replace(None);
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = (self.spawn_loop)(listener, stop_rx, self.connections.clone());
        self.accepting = Some((stop_tx, task));
    }

    /// Stops accepting; the listener comes back (connections already in its queue stay there, for
    /// whoever accepts on the same socket next). None if it was not accepting.
    pub async fn stop_accepting(&mut self) -> Option<TcpListener> {
        let (stop, task) = self.accepting.take()?;
        let _ = stop.send(true);
        task.await.ok()
    }

    /// Drains the connections (see the module's comment).
    pub fn drain(&self, linger: Duration) {
        self.connections.drain.send_replace(Some(linger));
    }

    /// Open connections.
    pub fn open(&self) -> usize {
        *self.connections.open.borrow()
    }

    /// Resolves once every connection is closed.
    pub async fn closed(&self) {
        let mut open = self.connections.open.subscribe();
        let _ = open.wait_for(|n| *n == 0).await;
        log::info("connections closed", json!({ "port": self.name }));
    }
}

async fn accept_loop<F, Fut, B>(name: &'static str, listener: TcpListener, mut stop: watch::Receiver<bool>, connections: Connections, handler: F) -> TcpListener
where
    F: Fn(hyper::Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<hyper::Response<B>, std::convert::Infallible>> + Send + 'static,
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        let accepted: std::io::Result<(tokio::net::TcpStream, SocketAddr)> = tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => return listener,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(serve_connection(stream, connections.clone(), handler.clone()));
            }
            Err(err) => {
                // Out of file descriptors and the like: wait a moment rather than spin.
                log::error("accept failed", json!({ "port": name, "err": err.to_string() }));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve_connection<F, Fut, B>(stream: tokio::net::TcpStream, connections: Connections, handler: F)
where
    F: Fn(hyper::Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<hyper::Response<B>, std::convert::Infallible>> + Send + 'static,
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    connections.open.send_modify(|n| *n += 1);
    let _open = OpenGuard(connections.open.clone());
    let activity = Arc::new(Activity::new());
    let mut drain = connections.drain.subscribe();
    let service = {
        let activity = activity.clone();
        let drain = drain.clone();
        service_fn(move |req| {
            let busy = activity.begin();
            let response = handler(req);
            let drain = drain.clone();
            async move {
                let mut response = response.await?;
                if drain.borrow().is_some() {
                    response.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
                }
                Ok::<_, std::convert::Infallible>(response.map(|body| Tracked { inner: body, _busy: busy }))
            }
        })
    };
    // A client must send a request's headers within this time (slow-loris); like Node's
    // keepAliveTimeout, which the router used to have, it is well above any client pool's idle time.
    let connection = http1::Builder::new().timer(TokioTimer::new()).header_read_timeout(HEADER_READ_TIMEOUT).serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = drain.wait_for(|d| d.is_some()) => {}
    }
    let linger = drain.borrow().unwrap_or_default();
    loop {
        let wait = match activity.idle_for() {
            Some(idle) if idle >= linger => {
                // Idle (no request being answered) for the whole linger: close it.
                connection.as_mut().graceful_shutdown();
                let _ = connection.as_mut().await;
                return;
            }
            Some(idle) => linger - idle,
            None if linger.is_zero() => {
                // Busy: it closes right after the response it is sending.
                connection.as_mut().graceful_shutdown();
                let _ = connection.as_mut().await;
                return;
            }
            None => linger,
        };
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = tokio::time::sleep(wait) => {}
            _ = activity.became_idle.notified() => {}
        }
    }
}

struct OpenGuard(Arc<watch::Sender<usize>>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

/// Whether a connection is answering a request, and since when it is idle.
struct Activity {
    busy: AtomicUsize,
    /// When it last became idle, in ms after `base`.
    idle_since_ms: AtomicU64,
    base: Instant,
    became_idle: Notify,
}

impl Activity {
    fn new() -> Activity {
        Activity { busy: AtomicUsize::new(0), idle_since_ms: AtomicU64::new(0), base: Instant::now(), became_idle: Notify::new() }
    }

    fn begin(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }

    /// None while a request is being answered.
    fn idle_for(&self) -> Option<Duration> {
        if self.busy.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::SeqCst));
        Some(self.base.elapsed().saturating_sub(since))
    }
}

/// One request being answered on a connection: from its arrival until its response body is done
/// (or dropped).
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let activity = &self.0;
        activity.idle_since_ms.store(activity.base.elapsed().as_millis() as u64, Ordering::SeqCst);
        if activity.busy.fetch_sub(1, Ordering::SeqCst) == 1 {
            activity.became_idle.notify_one();
        }
    }
}

/// A response body that keeps its connection counted busy until it is done.
pub struct Tracked<B> {
    inner: B,
    _busy: Busy,
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
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
    fn a_connection_is_idle_only_between_requests() {
        let activity = Arc::new(Activity::new());
        assert!(activity.idle_for().is_some(), "a new connection is idle");
        let first = activity.begin();
        let second = activity.begin(); // pipelined
        assert_eq!(activity.idle_for(), None);
        drop(first);
        assert_eq!(activity.idle_for(), None, "still answering the second");
        drop(second);
        let idle = activity.idle_for().expect("idle after its last response");
        assert!(idle < Duration::from_secs(1), "{idle:?}");
    }
}
