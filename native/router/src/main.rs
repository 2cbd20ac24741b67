//! rollout-router: gpu-rollout's data plane. A weighted HTTP reverse proxy (hyper on one tokio
//! thread) on the traffic port, and the admin API the rollout activities call on the admin port.
//!
//! Environment: ROUTER_TOKEN (required), ROUTER_TRAFFIC_PORT (default 8080), ROUTER_ADMIN_PORT
//! (default 8081), ROUTER_HOST (traffic interface, default 127.0.0.1), ROUTER_ADMIN_HOST (default
//! 127.0.0.1), ROUTER_STATE_PATH (route table file; absent = memory only), ROUTER_CLOSE_GRACE_MS
//! (how long a stopping router lets requests in flight finish, default 10000),
//! ROUTER_EXIT_WITH_STDIN=1 (stop as on SIGTERM when stdin closes: the parent went away),
//! ROUTER_DRAIN_IDLE_MS (a stopping router closes a kept-alive connection once it has been idle
//! this long, default 2000; server.rs), ROUTER_HANDOVER_SOCKET (a Unix socket path: where a new
//! router process can take this one over), ROUTER_TAKEOVER=1 (take the ports, route table and
//! counters over from the router on ROUTER_HANDOVER_SOCKET instead of binding the ports; see
//! handover.rs), ROUTER_HANDOVER_GRACE_MS (how long a router that was taken over lets its
//! requests in flight, streams included, finish; default 600000).
//!
//! Once both ports listen, one JSON log line says `"msg":"router ready"` with `trafficUrl`,
//! `adminUrl` and `build` (and `takeoverFrom`, the pid it took over from). A configuration error is one line on stderr and exit code 2.

/// mimalloc: glibc's malloc and free were 6-7% of the router's CPU per request (perf), for the
/// many small short-lived allocations of a request (headers, futures, buffers).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod admin;
mod ejection;
mod gather;
mod handover;
mod identity;
mod link;
mod log;
mod picker;
mod pinning;
mod proxy;
mod routes;
mod server;
mod state;
mod stats;
mod upstream;

use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::handover::{Message, Peer};
use crate::routes::RouteStore;
use crate::server::Server;
use crate::state::Shared;
use crate::stats::RouterStats;

/// How long a new process waits for the old one to hand over (it first lets admin calls finish).
const TAKEOVER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the old process waits for the new one to say it is ready, and for admin calls to end.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const ADMIN_QUIET_TIMEOUT: Duration = Duration::from_secs(10);
/// A Unix socket path has room for 107 bytes; the temporary name it is bound at adds `.<pid>`.
const MAX_SOCKET_PATH: usize = 96;

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
    drain_idle: Duration,
    handover_socket: Option<PathBuf>,
    takeover: bool,
    handover_grace: Duration,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn millis(name: &str, fallback: u64) -> Result<Duration, String> {
    match env(name) {
        None => Ok(Duration::from_millis(fallback)),
        Some(raw) => raw.parse::<u64>().map(Duration::from_millis).map_err(|_| format!("{name} must be a number of milliseconds, got \"{raw}\"")),
    }
}

fn config() -> Result<Config, String> {
    let token = env("ROUTER_TOKEN").ok_or("ROUTER_TOKEN is not set: the admin API needs a bearer token")?;
    let port = |name: &str, fallback: u16| -> Result<u16, String> {
        match env(name) {
            None => Ok(fallback),
            Some(raw) => raw.parse::<u16>().map_err(|_| format!("{name} must be a port number (0-65535), got \"{raw}\"")),
        }
    };
    let grace = millis("ROUTER_CLOSE_GRACE_MS", 10_000)?;
    // How long a replica may take to send its response headers (a hung replica must not hold a
    // client forever); streams are not cut once they have started. 0 turns it off.
    let upstream_timeout = millis("ROUTER_UPSTREAM_TIMEOUT_MS", 300_000)?;
    let handover_socket = env("ROUTER_HANDOVER_SOCKET").map(PathBuf::from);
    if let Some(path) = &handover_socket {
        if path.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(format!("ROUTER_HANDOVER_SOCKET must be a path of at most {MAX_SOCKET_PATH} bytes (a Unix socket), got {} bytes", path.as_os_str().len()));
        }
    }
    let takeover = match env("ROUTER_TAKEOVER").as_deref() {
        None | Some("0") => false,
        Some("1") => true,
        Some(other) => return Err(format!("ROUTER_TAKEOVER must be 1 or 0, got \"{other}\"")),
    };
    if takeover && handover_socket.is_none() {
        return Err("ROUTER_TAKEOVER=1 needs ROUTER_HANDOVER_SOCKET: the socket of the router to take over".into());
    }
    Ok(Config {
        token,
        traffic_host: env("ROUTER_HOST").unwrap_or_else(|| "127.0.0.1".into()),
        traffic_port: port("ROUTER_TRAFFIC_PORT", 8080)?,
        admin_host: env("ROUTER_ADMIN_HOST").unwrap_or_else(|| "127.0.0.1".into()),
        admin_port: port("ROUTER_ADMIN_PORT", 8081)?,
        state_path: env("ROUTER_STATE_PATH").map(PathBuf::from),
        grace,
        upstream_timeout: if upstream_timeout.is_zero() { Duration::MAX } else { upstream_timeout },
        exit_with_stdin: env("ROUTER_EXIT_WITH_STDIN").is_some_and(|v| v == "1"),
        drain_idle: millis("ROUTER_DRAIN_IDLE_MS", 2_000)?,
        handover_socket,
        takeover,
        handover_grace: millis("ROUTER_HANDOVER_GRACE_MS", 600_000)?,
    })
}

fn fail(message: &str) -> ! {
    eprintln!("rollout-router: {message}");
    std::process::exit(2);
}

/// Where this process's ports, routes and counters come from.
struct Start {
    traffic: TcpListener,
    admin: TcpListener,
    routes: RouteStore,
    stats: RouterStats,
    /// Taken over from: the old process's handover connection, pid and build.
    predecessor: Option<(Peer, u32, String)>,
}

async fn start(config: &Config) -> Result<Start, String> {
    if config.takeover {
        let path = config.handover_socket.as_deref().unwrap_or(Path::new(""));
        let inherited = handover::take_over(path, identity::build(), TAKEOVER_TIMEOUT).await?;
        return Ok(Start {
            traffic: inherited.traffic,
            admin: inherited.admin,
            routes: RouteStore::adopt(inherited.table, config.state_path.clone())?,
            stats: RouterStats::restore(inherited.stats),
            predecessor: Some((inherited.predecessor, inherited.from_pid, inherited.from_build)),
        });
    }
    let routes = RouteStore::open(config.state_path.clone())?;
    let traffic = TcpListener::bind((config.traffic_host.as_str(), config.traffic_port)).await.map_err(|e| format!("traffic port: {e}"))?;
    let admin = TcpListener::bind((config.admin_host.as_str(), config.admin_port)).await.map_err(|e| format!("admin port: {e}"))?;
    Ok(Start { traffic, admin, routes, stats: RouterStats::default(), predecessor: None })
}

/// One thread: on the small machines this runs on, the proxy shares the cores with the replicas,
/// and one event loop per process (like an nginx worker) keeps its cost per request lowest.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let config = config().unwrap_or_else(|e| fail(&e));
    let mut stop = StopSignals::new(config.exit_with_stdin);
    let Start { traffic, admin, routes, stats, predecessor } = start(&config).await.unwrap_or_else(|e| fail(&e));
    let shared = Shared::new(routes, stats, &config.token, config.upstream_timeout);

    let traffic_url = url_of(&traffic, &config.traffic_host, config.takeover);
    let admin_url = url_of(&admin, &config.admin_host, config.takeover);
    // Our own handle on the traffic socket, to hand it over while the accept loop goes on using it.
    let traffic_fd: OwnedFd = traffic.as_fd().try_clone_to_owned().unwrap_or_else(|e| fail(&format!("traffic port: {e}")));
    let mut traffic_server = {
        let shared = shared.clone();
        Server::start("traffic", traffic, move |req| proxy::handle(shared.clone(), req))
    };
    let mut admin_server = {
        let shared = shared.clone();
        Server::start("admin", admin, move |req| admin::handle(shared.clone(), req))
    };
    let takeover_from = match predecessor {
        None => None,
        Some((mut peer, pid, build)) => {
            if let Err(e) = peer.send(&Message::Ready).await {
                fail(&format!("ROUTER_TAKEOVER: the router (pid {pid}) went away before this one was ready ({e})"));
            }
            log::info("took over from the previous router: it stops accepting and lets its requests finish", json!({ "fromPid": pid, "fromBuild": build }));
            tokio::spawn(follow_predecessor(shared.clone(), peer, pid));
            Some(pid)
        }
    };
    // Bound after the takeover: the old router's socket stays in place until this one is ready.
    let handovers = match &config.handover_socket {
        None => None,
        Some(path) => {
            let listener = handover::bind_socket(path).unwrap_or_else(|e| fail(&e));
            let bound = std::fs::metadata(path).ok();
            Some((listener, path.clone(), bound))
        }
    };
    log::info(
        "router ready",
        json!({
            "trafficUrl": traffic_url,
            "adminUrl": admin_url,
            "statePath": config.state_path.as_ref().map(|p| p.display().to_string()),
            "build": identity::build(),
            "handoverSocket": config.handover_socket.as_ref().map(|p| p.display().to_string()),
            "takeoverFrom": takeover_from,
        }),
    );

    // Serve until told to stop, or until a new process has taken over.
    let successor = loop {
        let takeover = async {
            match &handovers {
                Some((listener, _, _)) => handover::accept_takeover(listener).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            reason = stop.next() => {
                stop_serving(&config, reason, &mut traffic_server, &mut admin_server, traffic_fd).await;
                if let Some((_, path, Some(bound))) = &handovers {
                    handover::unlink_if_ours(path, bound);
                }
                log::info("router stopped", json!({}));
                std::process::exit(0);
            }
            request = takeover => match request {
                Ok((peer, pid, build)) => {
                    log::info("handing over to a new router process", json!({ "toPid": pid, "toBuild": build }));
                    match hand_over(peer, &mut admin_server, &traffic_fd, &shared).await {
                        Ok(peer) => break (peer, pid),
                        Err(e) => log::error("handover failed: this router serves on", json!({ "toPid": pid, "err": e })),
                    }
                }
                Err(e) => log::warn("handover request refused", json!({ "err": e })),
            },
        }
    };
    drop(handovers);
    retire(&config, &mut stop, &mut traffic_server, traffic_fd, &shared, successor).await;
    log::info("router stopped", json!({}));
    std::process::exit(0);
}

/// The URL of a bound socket: the configured host (as the user wrote it) unless the socket was
/// inherited, whose own address is the truth.
fn url_of(listener: &TcpListener, configured_host: &str, inherited: bool) -> String {
    let addr = listener.local_addr().ok();
    let port = addr.map(|a| a.port()).unwrap_or(0);
    let host = match addr {
        Some(a) if inherited => a.ip().to_string(),
        _ => configured_host.to_string(),
    };
    // An IPv6 literal needs brackets in a URL.
    if host.contains(':') {
        format!("http://[{host}]:{port}")
    } else {
        format!("http://{host}:{port}")
    }
}

/// SIGTERM, SIGINT or stdin closing: no new connections; requests in flight (streams too) finish
/// within the grace period; kept-alive connections close once idle.
async fn stop_serving(config: &Config, reason: &str, traffic: &mut Server, admin: &mut Server, traffic_fd: OwnedFd) {
    log::info("router stopping: no new connections, letting requests in flight finish", json!({ "signal": reason, "graceMs": config.grace.as_millis() as u64 }));
    drop(traffic.stop_accepting().await);
    drop(traffic_fd);
    drop(admin.stop_accepting().await);
    traffic.drain(config.drain_idle);
    admin.drain(Duration::ZERO);
    if tokio::time::timeout(config.grace, async { tokio::join!(traffic.closed(), admin.closed()) }).await.is_err() {
        log::warn("grace period over: cutting the requests still in flight", json!({ "graceMs": config.grace.as_millis() as u64, "open": traffic.open() + admin.open() }));
    }
}

/// The old process's side of a handover, up to the new one being ready. On failure the admin port
/// is accepted on again (the traffic port never stopped).
async fn hand_over(mut peer: Peer, admin: &mut Server, traffic_fd: &OwnedFd, shared: &Shared) -> Result<Peer, String> {
    let Some(admin_listener) = admin.stop_accepting().await else { return Err("the admin port is not being served".into()) };
    // No route changes from here on: admin calls on open connections finish, new ones wait in the
    // socket's queue for the new process.
    admin.drain(Duration::ZERO);
    let handed = async {
        tokio::time::timeout(ADMIN_QUIET_TIMEOUT, admin.closed()).await.map_err(|_| format!("admin requests still running after {} s", ADMIN_QUIET_TIMEOUT.as_secs()))?;
        let state = Message::State { pid: std::process::id(), build: identity::build().to_string(), table: shared.routes().all().clone(), stats: shared.stats().snapshot() };
        handover::send_state(&mut peer, [traffic_fd.as_raw_fd(), admin_listener.as_raw_fd()], state).await.map_err(|e| format!("sending the sockets and state: {e}"))?;
        match tokio::time::timeout(READY_TIMEOUT, peer.receive()).await {
            Ok(Ok(Some(Message::Ready))) => Ok(()),
            Ok(Ok(Some(other))) => Err(format!("expected ready, got {other:?}")),
            Ok(Ok(None)) => Err("the new process went away before it was ready".to_string()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!("the new process was not ready within {} s", READY_TIMEOUT.as_secs())),
        }
    };
    match handed.await {
        Ok(()) => Ok(peer),
        Err(e) => {
            admin.resume(admin_listener);
            Err(e)
        }
    }
}

/// The old process once the new one is ready: it stops accepting (the socket stays open, held by
/// the new process, so nobody is refused), lets its requests in flight finish (streams included,
/// up to ROUTER_HANDOVER_GRACE_MS; a stop signal shortens that to ROUTER_CLOSE_GRACE_MS) and tells
/// the new process what it still has in flight.
async fn retire(config: &Config, stop: &mut StopSignals, traffic: &mut Server, traffic_fd: OwnedFd, shared: &Shared, (mut successor, to_pid): (Peer, u32)) {
    drop(traffic.stop_accepting().await);
    drop(traffic_fd);
    traffic.drain(config.drain_idle);
    log::info("handed over: no new connections here, letting requests in flight finish", json!({ "toPid": to_pid, "graceMs": config.handover_grace.as_millis() as u64 }));
    let mut deadline = Instant::now() + config.handover_grace;
    let mut stop_seen = false;
    let mut reported = None;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = traffic.closed() => break,
            _ = tokio::time::sleep_until(deadline) => {
                log::warn("grace period over: cutting the requests still in flight", json!({ "open": traffic.open() }));
                break;
            }
            reason = stop.next(), if !stop_seen => {
                stop_seen = true;
                deadline = deadline.min(Instant::now() + config.grace);
                log::info("stop asked while handing over: requests in flight get the close grace period", json!({ "signal": reason, "graceMs": config.grace.as_millis() as u64 }));
            }
            _ = tick.tick() => {
                let inflight = shared.stats().inflight_all();
                if reported.as_ref() != Some(&inflight) {
                    // The new process may be gone already: then nobody needs to know.
                    let _ = successor.send(&Message::Inflight { services: inflight.clone() }).await;
                    reported = Some(inflight);
                }
            }
        }
    }
}

/// The new process: adds what the old one still has in flight to its own counts, until it exits.
async fn follow_predecessor(shared: Arc<Shared>, mut peer: Peer, pid: u32) {
    loop {
        match peer.receive().await {
            Ok(Some(Message::Inflight { services })) => *shared.predecessor_inflight() = services,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    shared.predecessor_inflight().clear();
    log::info("the previous router has exited", json!({ "pid": pid }));
}

/// SIGTERM, SIGINT, or (when asked) stdin closing.
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    stdin_closed: watch::Receiver<bool>,
}

impl StopSignals {
    fn new(exit_with_stdin: bool) -> StopSignals {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate()).unwrap_or_else(|e| fail(&format!("cannot watch SIGTERM: {e}")));
        let int = signal(SignalKind::interrupt()).unwrap_or_else(|e| fail(&format!("cannot watch SIGINT: {e}")));
        let (closed_tx, stdin_closed) = watch::channel(false);
        if exit_with_stdin {
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut stdin = tokio::io::stdin();
                let mut buf = [0u8; 256];
                while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
                let _ = closed_tx.send(true);
            });
        } else {
            // Kept alive, never sent: the receiver waits forever.
            std::mem::forget(closed_tx);
        }
        StopSignals { term, int, stdin_closed }
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
            _ = self.stdin_closed.wait_for(|closed| *closed) => "stdin closed",
        }
    }
}
