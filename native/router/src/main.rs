//! rollout-router: gpu-rollout's data plane. A weighted HTTP reverse proxy (hyper on one tokio
//! thread) on the traffic port, and the admin API the rollout activities call on the admin port.
//!
//! Environment: ROUTER_TOKEN (required), ROUTER_TRAFFIC_PORT (default 8080), ROUTER_ADMIN_PORT
//! (default 8081), ROUTER_HOST (traffic interface, default 127.0.0.1), ROUTER_ADMIN_HOST (default
//! 127.0.0.1), ROUTER_STATE_PATH (route table file; absent = memory only), ROUTER_CLOSE_GRACE_MS
//! (how long a stopping router lets requests in flight finish, default 10000),
//! ROUTER_EXIT_WITH_STDIN=1 (stop as on SIGTERM when stdin closes: the parent went away).
//!
//! Once both ports listen, one JSON log line says `"msg":"router ready"` with `trafficUrl` and
//! `adminUrl`. A configuration error is one line on stderr and exit code 2.

mod admin;
mod ejection;
mod log;
mod picker;
mod pinning;
mod proxy;
mod routes;
mod state;
mod stats;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::state::Shared;

const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(65);

struct Config {
    token: String,
    traffic_host: String,
    traffic_port: u16,
    admin_host: String,
    admin_port: u16,
    state_path: Option<PathBuf>,
    grace: Duration,
    upstream_timeout: Duration,
    exit_with_stdin: bool,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn config() -> Result<Config, String> {
    let token = env("ROUTER_TOKEN").ok_or("ROUTER_TOKEN is not set: the admin API needs a bearer token")?;
    let port = |name: &str, fallback: u16| -> Result<u16, String> {
        match env(name) {
            None => Ok(fallback),
            Some(raw) => raw.parse::<u16>().map_err(|_| format!("{name} must be a port number (0-65535), got \"{raw}\"")),
        }
    };
    let grace_ms = match env("ROUTER_CLOSE_GRACE_MS") {
        None => 10_000,
        Some(raw) => raw.parse::<u64>().map_err(|_| format!("ROUTER_CLOSE_GRACE_MS must be a number of milliseconds, got \"{raw}\""))?,
    };
    // How long a replica may take to send its response headers (a hung replica must not hold a
    // client forever); streams are not cut once they have started. 0 turns it off.
    let upstream_timeout_ms = match env("ROUTER_UPSTREAM_TIMEOUT_MS") {
        None => 300_000,
        Some(raw) => raw.parse::<u64>().map_err(|_| format!("ROUTER_UPSTREAM_TIMEOUT_MS must be a number of milliseconds, got \"{raw}\""))?,
    };
    Ok(Config {
        token,
        traffic_host: env("ROUTER_HOST").unwrap_or_else(|| "127.0.0.1".into()),
        traffic_port: port("ROUTER_TRAFFIC_PORT", 8080)?,
        admin_host: env("ROUTER_ADMIN_HOST").unwrap_or_else(|| "127.0.0.1".into()),
        admin_port: port("ROUTER_ADMIN_PORT", 8081)?,
        state_path: env("ROUTER_STATE_PATH").map(PathBuf::from),
        grace: Duration::from_millis(grace_ms),
        upstream_timeout: if upstream_timeout_ms == 0 { Duration::MAX } else { Duration::from_millis(upstream_timeout_ms) },
        exit_with_stdin: env("ROUTER_EXIT_WITH_STDIN").is_some_and(|v| v == "1"),
    })
}

fn fail(message: &str) -> ! {
    eprintln!("rollout-router: {message}");
    std::process::exit(2);
}

/// One thread: on the small machines this runs on, the proxy shares the cores with the replicas,
/// and one event loop per process (like an nginx worker) keeps its cost per request lowest.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let config = config().unwrap_or_else(|e| fail(&e));
    let routes = routes::RouteStore::open(config.state_path.clone()).unwrap_or_else(|e| fail(&e));
    let shared = Shared::new(routes, &config.token, config.upstream_timeout);

    let traffic = bind(&config.traffic_host, config.traffic_port).await.unwrap_or_else(|e| fail(&format!("traffic port: {e}")));
    let admin = bind(&config.admin_host, config.admin_port).await.unwrap_or_else(|e| fail(&format!("admin port: {e}")));
    let traffic_url = url_of(&config.traffic_host, traffic.local_addr().map(|a| a.port()).unwrap_or(0));
    let admin_url = url_of(&config.admin_host, admin.local_addr().map(|a| a.port()).unwrap_or(0));

    let graceful = Arc::new(GracefulShutdown::new());
    let (stop_tx, stop_rx) = watch::channel(false);
    let traffic_loop = {
        let shared = shared.clone();
        tokio::spawn(serve(traffic, graceful.clone(), stop_rx.clone(), move |req| proxy::handle(shared.clone(), req)))
    };
    let admin_loop = {
        let shared = shared.clone();
        tokio::spawn(serve(admin, graceful.clone(), stop_rx.clone(), move |req| admin::handle(shared.clone(), req)))
    };
    log::info("router ready", json!({ "trafficUrl": traffic_url, "adminUrl": admin_url, "statePath": config.state_path.as_ref().map(|p| p.display().to_string()) }));

    let reason = stop_requested(config.exit_with_stdin).await;
    log::info("router stopping: no new connections, letting requests in flight finish", json!({ "signal": reason, "graceMs": config.grace.as_millis() as u64 }));
    let _ = stop_tx.send(true);
    let _ = traffic_loop.await;
    let _ = admin_loop.await;
    // Idle kept-alive connections close at once; busy ones after their response (streams too).
    let graceful = Arc::try_unwrap(graceful).unwrap_or_else(|_| unreachable!("the accept loops have ended"));
    if tokio::time::timeout(config.grace, graceful.shutdown()).await.is_err() {
        log::warn("grace period over: cutting the requests still in flight", json!({ "graceMs": config.grace.as_millis() as u64 }));
    }
    log::info("router stopped", json!({}));
    std::process::exit(0);
}

async fn bind(host: &str, port: u16) -> std::io::Result<TcpListener> {
    TcpListener::bind((host, port)).await
}

fn url_of(host: &str, port: u16) -> String {
    // An IPv6 literal needs brackets in a URL.
    if host.contains(':') {
        format!("http://[{host}]:{port}")
    } else {
        format!("http://{host}:{port}")
    }
}

/// Accepts connections until told to stop; each is served by hyper's HTTP/1.1 connection and
/// watched for the graceful shutdown.
async fn serve<F, Fut, B>(listener: TcpListener, graceful: Arc<GracefulShutdown>, mut stop: watch::Receiver<bool>, handler: F)
where
    F: Fn(hyper::Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<hyper::Response<B>, std::convert::Infallible>> + Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    loop {
        let accepted: std::io::Result<(tokio::net::TcpStream, SocketAddr)> = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of file descriptors and the like: wait a moment rather than spin.
                log::error("accept failed", json!({ "err": err.to_string() }));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        // A client must send a request's headers within this time (slow-loris); like Node's
        // keepAliveTimeout, which the router used to have, it is well above any client pool's idle time.
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service_fn(handler));
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
        });
    }
}

/// SIGTERM, SIGINT, or (when asked) stdin closing.
async fn stop_requested(exit_with_stdin: bool) -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).unwrap_or_else(|e| fail(&format!("cannot watch SIGTERM: {e}")));
    let mut int = signal(SignalKind::interrupt()).unwrap_or_else(|e| fail(&format!("cannot watch SIGINT: {e}")));
    let stdin_closed = async {
        if !exit_with_stdin {
            return std::future::pending().await;
        }
        use tokio::io::AsyncReadExt;
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 256];
        while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        _ = stdin_closed => "stdin closed",
    }
}
