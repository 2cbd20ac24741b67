//! Handing the router over to a new process (a restart, or an upgrade to another build) without
//! dropping a request, over a Unix socket (`ROUTER_HANDOVER_SOCKET`), as HAProxy's seamless reload
//! and Envoy's hot restart do. The listening sockets themselves move (SCM_RIGHTS): one socket, held
//! by both processes for a moment, so no connection is ever refused or reset, and connections
//! waiting in its queue are accepted by whichever process accepts next.
//!
//! The new process (B, started with `ROUTER_TAKEOVER=1`) connects to the old one (A):
//!
//!   B → A  {"op":"takeover","pid","build"}
//!          A stops accepting on the admin port and lets its admin connections finish: from here on
//!          A changes no route. Admin calls wait in the admin socket's queue for B.
//!   A → B  one byte with the traffic and admin listeners attached (SCM_RIGHTS), then
//!          {"op":"state","pid","build","table","stats"}: the route table (what A persisted) and
//!          its counters, so that B's counters go on from A's instead of starting at 0.
//!          B starts accepting on both listeners (A still accepts traffic too: same socket).
//!   B → A  {"op":"ready"}
//!          A stops accepting traffic and drains its connections (server.rs); until its last one is
//!          closed it reports its requests in flight, which B adds to its own (a replica being
//!          drained is not terminated while A still streams from it):
//!   A → B  {"op":"inflight","services":{"<service>":{"<replica>":n}}} …, then A exits (EOF).
//!
//! If B goes away (or never says ready) A resumes accepting admin calls and keeps serving. Only a
//! process of the same user (or root) may take over: the listeners are the whole router.

use std::collections::BTreeMap;
use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Interest};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, UnixListener, UnixStream};

use crate::routes::RouteTable;
use crate::stats::StatsSnapshot;

/// In-flight requests per service and replica.
pub type Inflight = BTreeMap<String, BTreeMap<String, u64>>;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Message {
    Takeover { pid: u32, build: String },
    State { pid: u32, build: String, table: RouteTable, stats: StatsSnapshot },
    Ready,
    Inflight { services: Inflight },
}

impl Message {
    fn line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }

    fn parse(line: &str) -> Result<Message, String> {
        serde_json::from_str(line.trim_end()).map_err(|e| format!("unexpected handover message ({e}): {}", line.chars().take(200).collect::<String>()))
    }
}

/// One end of a handover connection, read line by line.
pub struct Peer {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Peer {
    fn new(stream: UnixStream) -> Peer {
        let (read, write) = stream.into_split();
        Peer { reader: BufReader::new(read), writer: write }
    }

    pub async fn send(&mut self, message: &Message) -> std::io::Result<()> {
        self.writer.write_all(&message.line()).await
    }

    /// The next message; None at EOF (the other process went away).
    pub async fn receive(&mut self) -> Result<Option<Message>, String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line).await {
            Ok(0) => Ok(None),
            Ok(_) => Message::parse(&line).map(Some),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// What B gets from A.
pub struct Inherited {
    pub traffic: TcpListener,
    pub admin: TcpListener,
    pub table: RouteTable,
    pub stats: StatsSnapshot,
    pub from_pid: u32,
    pub from_build: String,
    /// Still open: B says ready on it, A reports its in-flight requests on it.
    pub predecessor: Peer,
}

/// B's side: asks the router on `path` for its listeners, route table and counters.
pub async fn take_over(path: &Path, build: &str, timeout: Duration) -> Result<Inherited, String> {
    let stream = UnixStream::connect(path).await.map_err(|e| format!("ROUTER_TAKEOVER: no router to take over from on {} ({e})", path.display()))?;
    let mut stream = stream;
    let hello = Message::Takeover { pid: std::process::id(), build: build.to_string() }.line();
    stream.write_all(&hello).await.map_err(|e| format!("ROUTER_TAKEOVER: the router on {} hung up ({e})", path.display()))?;
    let received = tokio::time::timeout(timeout, async {
        let fds = receive_fds(&stream).await?;
        let mut peer = Peer::new(stream);
        match peer.receive().await? {
            Some(Message::State { pid, build, table, stats }) => Ok((fds, peer, pid, build, table, stats)),
            Some(other) => Err(format!("expected the router's state, got {other:?}")),
            None => Err("the router hung up before sending its state".to_string()),
        }
    })
    .await
    .map_err(|_| format!("ROUTER_TAKEOVER: the router on {} did not hand over within {} ms", path.display(), timeout.as_millis()))?
    .map_err(|e| format!("ROUTER_TAKEOVER: {e}"))?;
    let (fds, predecessor, from_pid, from_build, table, stats) = received;
    let [traffic, admin]: [OwnedFd; 2] = fds.try_into().map_err(|fds: Vec<OwnedFd>| format!("ROUTER_TAKEOVER: expected 2 listening sockets, got {}", fds.len()))?;
    Ok(Inherited { traffic: listener(traffic)?, admin: listener(admin)?, table, stats, from_pid, from_build, predecessor })
}

fn listener(fd: OwnedFd) -> Result<TcpListener, String> {
    let std_listener = std::net::TcpListener::from(fd);
    std_listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    TcpListener::from_std(std_listener).map_err(|e| format!("ROUTER_TAKEOVER: the inherited socket is not a listener ({e})"))
}

/// A's side, step 1: a takeover request on the handover socket, from a process of our own user.
pub async fn accept_takeover(listener: &UnixListener) -> Result<(Peer, u32, String), String> {
    let (stream, _) = listener.accept().await.map_err(|e| format!("handover socket: {e}"))?;
    let cred = stream.peer_cred().map_err(|e| format!("handover socket: cannot tell who connected ({e})"))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { nix::libc::geteuid() };
    if cred.uid() != me && cred.uid() != 0 {
        return Err(format!("handover socket: refused a takeover by uid {} (the router runs as {me})", cred.uid()));
    }
    let mut peer = Peer::new(stream);
    match tokio::time::timeout(Duration::from_secs(10), peer.receive()).await {
        Ok(Ok(Some(Message::Takeover { pid, build }))) => Ok((peer, pid, build)),
        Ok(Ok(other)) => Err(format!("handover socket: expected a takeover request, got {other:?}")),
        Ok(Err(e)) => Err(format!("handover socket: {e}")),
        Err(_) => Err("handover socket: no takeover request within 10 s".to_string()),
    }
}

/// A's side, step 2: the listeners (traffic, admin), then the state.
pub async fn send_state(peer: &mut Peer, fds: [RawFd; 2], state: Message) -> std::io::Result<()> {
    let stream = peer.writer.as_ref();
    loop {
        stream.writable().await?;
        match stream.try_io(Interest::WRITABLE, || send_fds(stream.as_raw_fd(), &fds)) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    peer.send(&state).await
}

fn send_fds(socket: RawFd, fds: &[RawFd]) -> std::io::Result<()> {
    let iov = [IoSlice::new(b"F")];
    sendmsg::<()>(socket, &iov, &[ControlMessage::ScmRights(fds)], MsgFlags::empty(), None)?;
    Ok(())
}

async fn receive_fds(stream: &UnixStream) -> Result<Vec<OwnedFd>, String> {
    loop {
        stream.readable().await.map_err(|e| e.to_string())?;
        match stream.try_io(Interest::READABLE, || receive_fds_now(stream.as_raw_fd())) {
            Ok(fds) => return Ok(fds),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(format!("receiving the listening sockets: {e}")),
        }
    }
}

fn receive_fds_now(socket: RawFd) -> std::io::Result<Vec<OwnedFd>> {
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; 2]);
    let message = recvmsg::<()>(socket, &mut iov, Some(&mut space), MsgFlags::MSG_CMSG_CLOEXEC)?;
    if message.bytes == 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the router hung up"));
    }
    let mut fds = Vec::new();
    for cmsg in message.cmsgs()? {
        if let ControlMessageOwned::ScmRights(received) = cmsg {
            // SAFETY: the kernel just gave us these descriptors; nothing else owns them.
            fds.extend(received.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    Ok(fds)
}

/// The handover socket, bound so that a router already listening on the path keeps it until the
/// new one is ready: bound at a temporary path, then renamed over it (atomic).
pub fn bind_socket(path: &Path) -> Result<UnixListener, String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("ROUTER_HANDOVER_SOCKET {}: cannot create {} ({e})", path.display(), dir.display()))?;
    }
    let tmp = PathBuf::from(format!("{}.{}", path.display(), std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener = UnixListener::bind(&tmp).map_err(|e| format!("ROUTER_HANDOVER_SOCKET {}: {e}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600));
    std::fs::rename(&tmp, path).map_err(|e| format!("ROUTER_HANDOVER_SOCKET {}: {e}", path.display()))?;
    Ok(listener)
}

/// Removes the handover socket if it is still the one we bound (not a successor's).
pub fn unlink_if_ours(path: &Path, ours: &std::fs::Metadata) {
    use std::os::unix::fs::MetadataExt;
    if let Ok(now) = std::fs::metadata(path) {
        if now.ino() == ours.ino() && now.dev() == ours.dev() {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_json_lines_tagged_by_op() {
        let takeover = Message::Takeover { pid: 7, build: "0.1.0+x".into() };
        assert_eq!(String::from_utf8(takeover.line()).unwrap(), "{\"op\":\"takeover\",\"pid\":7,\"build\":\"0.1.0+x\"}\n");
        assert_eq!(Message::parse("{\"op\":\"ready\"}\n").unwrap(), Message::Ready);
        let inflight = Message::parse(r#"{"op":"inflight","services":{"llm":{"r1":2}}}"#).unwrap();
        assert_eq!(inflight, Message::Inflight { services: BTreeMap::from([("llm".to_string(), BTreeMap::from([("r1".to_string(), 2)]))]) });
        assert!(Message::parse("{\"op\":\"nonsense\"}").unwrap_err().contains("unexpected handover message"));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn listeners_and_state_cross_the_socket() {
        let dir = std::env::temp_dir().join(format!("rollout-router-handover-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("router.sock");
        let socket = bind_socket(&path).unwrap();
        let traffic = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ports = (traffic.local_addr().unwrap().port(), admin.local_addr().unwrap().port());

        let old = async {
            let (mut peer, pid, build) = accept_takeover(&socket).await.unwrap();
            assert_eq!((pid, build.as_str()), (std::process::id(), "new"));
            let state = Message::State { pid: 1, build: "old".into(), table: RouteTable::default(), stats: StatsSnapshot::default() };
            send_state(&mut peer, [traffic.as_raw_fd(), admin.as_raw_fd()], state).await.unwrap();
            assert_eq!(peer.receive().await.unwrap(), Some(Message::Ready));
            peer.send(&Message::Inflight { services: Inflight::new() }).await.unwrap();
        };
        let new = async {
            let mut inherited = take_over(&path, "new", Duration::from_secs(10)).await.unwrap();
            assert_eq!((inherited.from_pid, inherited.from_build.as_str()), (1, "old"));
            // The very same sockets: same ports, and a connection to one is accepted here.
            assert_eq!((inherited.traffic.local_addr().unwrap().port(), inherited.admin.local_addr().unwrap().port()), ports);
            let client = tokio::net::TcpStream::connect(("127.0.0.1", ports.0));
            let (accepted, connected) = tokio::join!(inherited.traffic.accept(), client);
            assert!(accepted.is_ok() && connected.is_ok());
            inherited.predecessor.send(&Message::Ready).await.unwrap();
            assert_eq!(inherited.predecessor.receive().await.unwrap(), Some(Message::Inflight { services: Inflight::new() }));
        };
        tokio::join!(old, new);
        let ours = std::fs::metadata(&path).unwrap();
        unlink_if_ours(&path, &ours);
        assert!(!path.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
