//! Kept-alive HTTP/1 connections to the replicas: per replica address, a stack of idle
//! connections (the most recently used first: it is the least likely to have been closed by the
//! replica), each a hyper `client::conn::http1` connection, driven by the task using it while a
//! request is on it and by a task of its own while it is idle (link.rs).
//!
//! In place of hyper-util's pooled client, which costs more per request (a pool shared behind
//! locks and checkout futures, a connector called with the request's URI, boxed futures) than a
//! proxy that always knows its backend needs. A connection goes back on its stack once its
//! response body has been read to the end (proxy.rs); one whose response was cut or abandoned is
//! closed, as HTTP/1 cannot reuse it.
//!
//! A request sent on a kept-alive connection that turns out to be closed (the replica closed it
//! while idle) before the request was written comes back unsent, and goes out on a new connection
//! to the same replica: it was not seen there, so this is no retry of the request. Idle connections
//! are closed after `IDLE_TIMEOUT`, before the replica would close them (Node's HTTP server: 5 s).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::link::Link;
use crate::state::UpstreamBody;

/// Upstream connections idle longer than this are closed by us first: Node's HTTP server (the
/// usual replica) closes idle kept-alive connections after 5 s, and a request sent on a
/// connection the replica is closing at that moment would fail.
pub const IDLE_TIMEOUT: Duration = Duration::from_millis(4_000);
const CONNECT_TIMEOUT: Duration = Duration::from_millis(2_000);
const MAX_IDLE_PER_REPLICA: usize = 256;
/// How often idle connections past their time are closed when nobody asks for one.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

type Sender = http1::SendRequest<UpstreamBody>;

/// A connection to a replica: sends requests on it, and drives it (link.rs).
pub struct Connection {
    sender: Sender,
    link: Arc<Link>,
}

impl Connection {
    /// Decodes what the connection has read, on the calling task (a response body's, whose frames
    /// it feeds).
    pub fn drive(&self, cx: &std::task::Context<'_>) {
        self.link.drive(cx);
    }

    /// While the guard lives, the caller polls what the connection feeds (link.rs).
    pub fn quiet(&self) -> crate::link::Quiet<'_> {
        self.link.quiet()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Not back in the pool: its idle driver sees the sender gone and closes it.
        self.link.end_exchange();
    }
}

/// Why a request got no response.
#[derive(Debug)]
pub enum UpstreamError {
    /// No connection: refused, unreachable, timed out, or the address does not resolve.
    Connect(std::io::Error),
    /// The connection failed while the request was sent or its response awaited.
    Http(hyper::Error),
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // The cause follows from `source()` (proxy.rs prints the chain).
            UpstreamError::Connect(_) => write!(f, "tcp connect error"),
            UpstreamError::Http(_) => write!(f, "upstream connection error"),
        }
    }
}

impl std::error::Error for UpstreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UpstreamError::Connect(err) => Some(err),
            UpstreamError::Http(err) => Some(err),
        }
    }
}

struct Idle {
    connection: Connection,
    since: Instant,
}

#[derive(Default)]
pub struct Upstreams {
    idle: Mutex<HashMap<Box<str>, Vec<Idle>>>,
}

/// A response, and the connection it came on (to go back to the pool once its body is read).
pub struct Answer {
    pub response: Response<Incoming>,
    pub connection: Connection,
}

impl Upstreams {
    fn idle(&self) -> MutexGuard<'_, HashMap<Box<str>, Vec<Idle>>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Closes idle connections past their time, every `SWEEP_EVERY`, for as long as the pool lives.
    pub fn sweep_in_background(self: &Arc<Self>) {
        let pool = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(pool) = pool.upgrade() else { return };
                let now = Instant::now();
                let mut idle = pool.idle();
                for stack in idle.values_mut() {
                    stack.retain(|c| now.duration_since(c.since) < IDLE_TIMEOUT && !c.connection.sender.is_closed());
                }
                idle.retain(|_, stack| !stack.is_empty());
            }
        });
    }

    /// Sends `request` (origin-form URI, Host header set) to the replica at `authority`
    /// (`host:port`), on an idle connection if there is one, else on a new one.
    pub async fn send(&self, authority: &str, mut request: Request<UpstreamBody>) -> Result<Answer, UpstreamError> {
        while let Some(mut connection) = self.checkout(authority) {
            connection.link.begin_exchange();
            let sent = connection.sender.try_send_request(request);
            match connection.link.exchange(sent).await {
                Ok(response) => return Ok(Answer { response, connection }),
                Err(mut err) => match err.take_message() {
                    // Not sent: the connection was closed under it. The next one, or a new one.
                    Some(unsent) => request = unsent,
                    None => return Err(UpstreamError::Http(err.into_error())),
                },
            }
        }
        let mut connection = connect(authority).await?;
        connection.link.begin_exchange();
        let sent = connection.sender.send_request(request);
        match connection.link.exchange(sent).await {
            Ok(response) => Ok(Answer { response, connection }),
            Err(err) => Err(UpstreamError::Http(err)),
        }
    }

    /// The most recently used idle connection to `authority` that is still open.
    fn checkout(&self, authority: &str) -> Option<Connection> {
        let mut idle = self.idle();
        let stack = idle.get_mut(authority)?;
        let now = Instant::now();
        while let Some(c) = stack.pop() {
            if c.connection.sender.is_ready() && now.duration_since(c.since) < IDLE_TIMEOUT {
                return Some(c.connection);
            }
            // Closed, past its time, or (its last response not quite finished on the connection's
            // side) not ready: dropping the sender closes it.
        }
        None
    }

    /// A connection whose response was read to its end, to be used again.
    pub fn put_back(self: &Arc<Self>, authority: &str, mut connection: Connection) {
        connection.link.end_exchange();
        if connection.sender.is_closed() {
            return;
        }
        if !connection.sender.is_ready() {
            // Its task has not quite taken in the response's end yet (it usually has by the time
            // the body's end reached us): back on the stack once it has.
            let pool = self.clone();
            let authority: Box<str> = authority.into();
            tokio::spawn(async move {
                if connection.sender.ready().await.is_ok() {
                    pool.stack_idle(&authority, connection);
                }
            });
            return;
        }
        self.stack_idle(authority, connection);
    }

    fn stack_idle(&self, authority: &str, connection: Connection) {
        let mut idle = self.idle();
        let stack = match idle.get_mut(authority) {
            Some(stack) => stack,
            None => idle.entry(authority.into()).or_default(),
        };
        if stack.len() >= MAX_IDLE_PER_REPLICA {
            // The oldest is the first to go.
            stack.remove(0);
        }
        stack.push(Idle { connection, since: Instant::now() });
    }

    /// Idle connections to `authority` (tests).
    #[cfg(test)]
    fn idle_count(&self, authority: &str) -> usize {
        self.idle().get(authority).map_or(0, Vec::len)
    }
}

/// A new connection to `authority`, its idle driver spawned.
async fn connect(authority: &str) -> Result<Connection, UpstreamError> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, async {
        match authority.parse::<SocketAddr>() {
            Ok(addr) => TcpStream::connect(addr).await,
            // A host name: resolved (off the event loop) on each new connection.
            Err(_) => TcpStream::connect(with_default_port(authority).as_ref()).await,
        }
    })
    .await
    .map_err(|_| UpstreamError::Connect(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("no connection within {} ms", CONNECT_TIMEOUT.as_millis()))))?
    .map_err(UpstreamError::Connect)?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.map_err(UpstreamError::Http)?;
    Ok(Connection { sender, link: Link::spawn(conn) })
}

/// `host` → `host:80`; `host:port` and `[v6]:port` as they are.
fn with_default_port(authority: &str) -> std::borrow::Cow<'_, str> {
    let has_port = match authority.rfind(']') {
        Some(close) => authority[close..].contains(':'),
        None => authority.contains(':'),
    };
    if has_port {
        authority.into()
    } else {
        format!("{authority}:80").into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body::Body;
    use http_body_util::{Either, Full};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn get(authority: &str) -> Request<UpstreamBody> {
        Request::builder().uri("/x").header("host", authority).body(Either::Left(Full::new(Bytes::new()))).unwrap()
    }

    /// A replica that answers each request on a connection with "ok", counting connections, and
    /// closes each connection after `per_connection` requests.
    async fn replica(per_connection: usize) -> (String, Arc<std::sync::atomic::AtomicUsize>, Arc<tokio::sync::Notify>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = accepted.clone();
        let closed = Arc::new(tokio::sync::Notify::new());
        let closing = closed.clone();
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let closing = closing.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    for _ in 0..per_connection {
                        let mut seen = Vec::new();
                        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                            let n = socket.read(&mut buf).await.unwrap_or(0);
                            if n == 0 {
                                return;
                            }
                            seen.extend_from_slice(&buf[..n]);
                        }
                        socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await.unwrap();
                    }
                    // Closed without a word, as a replica closing an idle connection does.
                    drop(socket);
                    closing.notify_one();
                });
            }
        });
        (authority, accepted, closed)
    }

    /// The body, read as proxy.rs reads it: the connection driven on this task meanwhile.
    async fn body_of(answer: Answer) -> (String, Connection) {
        let Answer { response, connection } = answer;
        let mut body = response.into_body();
        let mut read = Vec::new();
        std::future::poll_fn(|cx| {
            let mut driven = false;
            loop {
                match std::pin::Pin::new(&mut body).poll_frame(cx) {
                    std::task::Poll::Ready(Some(frame)) => {
                        read.extend_from_slice(&frame.unwrap().into_data().unwrap());
                        driven = false;
                    }
                    std::task::Poll::Ready(None) => return std::task::Poll::Ready(()),
                    std::task::Poll::Pending if !driven => {
                        connection.drive(cx);
                        driven = true;
                    }
                    std::task::Poll::Pending => return std::task::Poll::Pending,
                }
            }
        })
        .await;
        (String::from_utf8(read).unwrap(), connection)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_connection_put_back_is_used_again() {
        let (authority, accepted, _) = replica(100).await;
        let pool = Arc::new(Upstreams::default());
        for _ in 0..5 {
            let (body, connection) = body_of(pool.send(&authority, get(&authority)).await.unwrap()).await;
            assert_eq!(body, "ok");
            assert!(connection.sender.is_ready(), "the response's end was taken in before the body ended");
            pool.put_back(&authority, connection);
        }
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 1);
        assert_eq!(pool.idle_count(&authority), 1);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_request_on_a_connection_the_replica_closed_goes_out_on_a_new_one() {
        let (authority, accepted, closed) = replica(1).await;
        let pool = Arc::new(Upstreams::default());
        let (_, connection) = body_of(pool.send(&authority, get(&authority)).await.unwrap()).await;
        pool.put_back(&authority, connection);
        // The replica has closed that connection after its one answer (its task is done); the
        // next request must not fail, whether the pool notices the close before or after sending.
        closed.notified().await;
        let (body, _) = body_of(pool.send(&authority, get(&authority)).await.unwrap()).await;
        assert_eq!(body, "ok");
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_refused_connection_is_a_connect_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        drop(listener);
        let pool = Upstreams::default();
        let err = pool.send(&authority, get(&authority)).await.err().expect("refused");
        assert!(matches!(err, UpstreamError::Connect(ref e) if e.kind() == std::io::ErrorKind::ConnectionRefused), "{err:?}");
    }

    #[test]
    fn the_port_defaults_to_80() {
        assert_eq!(with_default_port("replica"), "replica:80");
        assert_eq!(with_default_port("replica:81"), "replica:81");
        assert_eq!(with_default_port("[::1]"), "[::1]:80");
        assert_eq!(with_default_port("[::1]:81"), "[::1]:81");
    }
}
