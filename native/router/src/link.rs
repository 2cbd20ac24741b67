//! An upstream connection's future (hyper's `client::conn::http1::Connection`), polled by the
//! task that is using the connection, else by a task of its own.
//!
//! While a request is on it (an exchange: from sending the request until its response body has
//! been read, or dropped), the downstream connection's task drives it: the response head, the
//! body's chunks and its end are decoded in the same poll in which they are passed on, so what
//! one read from the replica brought leaves in one write to the client (head with the first
//! chunk, the last chunk with the end of the body), with no event-loop turn given to a task of
//! the upstream connection's own in between. Idle in the pool, the connection is driven by its
//! own task (`drive_when_idle`), which sees the replica close it.
//!
//! Every poll of the connection uses one waker (`Wakers`) that wakes whoever drives it now: the
//! exchange's task, or the idle driver. While the exchange's task is polling what the connection
//! feeds (`quiet`), the wakes that this sends the connection (a request queued, a chunk taken) are
//! dropped: that task polls the connection next anyway, and a wake would only poll it once more
//! for nothing.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};

use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::state::UpstreamBody;

type Conn = http1::Connection<TokioIo<TcpStream>, UpstreamBody>;

pub struct Link {
    /// None once the connection has finished (closed, or failed).
    conn: Mutex<Option<Pin<Box<Conn>>>>,
    wakers: Arc<Wakers>,
    waker: Waker,
}

#[derive(Default)]
struct Wakers(Mutex<WakeTo>);

#[derive(Default)]
struct WakeTo {
    /// The task of the exchange on the connection, if there is one (it drives the connection).
    exchange: Option<Waker>,
    in_exchange: bool,
    /// The exchange's task is polling what the connection feeds, and polls the connection next.
    quiet: bool,
    /// The idle driver's task.
    driver: Option<Waker>,
}

impl Wakers {
    fn lock(&self) -> MutexGuard<'_, WakeTo> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Wake for Wakers {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let to = self.lock();
        let waker = match (to.in_exchange, to.quiet) {
            (true, true) => None,
            (true, false) => to.exchange.as_ref(),
            (false, _) => to.driver.as_ref(),
        };
        if let Some(waker) = waker {
            waker.wake_by_ref();
        }
    }
}

impl Link {
    /// The connection, with its idle driver spawned.
    pub fn spawn(conn: Conn) -> Arc<Link> {
        let wakers = Arc::new(Wakers::default());
        let link = Arc::new(Link { conn: Mutex::new(Some(Box::pin(conn))), waker: Waker::from(wakers.clone()), wakers });
        let idle = link.clone();
        tokio::spawn(async move { poll_fn(|cx| idle.drive_when_idle(cx)).await });
        link
    }

    fn poll_conn(&self) -> Poll<()> {
        let mut conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let Some(future) = conn.as_mut() else { return Poll::Ready(()) };
        // Its errors reach the request (or the response body) it was serving.
        if future.as_mut().poll(&mut Context::from_waker(&self.waker)).is_ready() {
            *conn = None;
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// A request is about to go out on the connection: its wakes are no longer the idle driver's
    /// (the exchange's task, polling the request next, drives it).
    pub fn begin_exchange(&self) {
        let mut to = self.wakers.lock();
        to.in_exchange = true;
        to.exchange = None;
    }

    /// Polls the connection on the exchange's task (`cx`), which its events wake from now until
    /// the exchange ends.
    pub fn drive(&self, cx: &Context<'_>) {
        let quiet = {
            let mut to = self.wakers.lock();
            to.in_exchange = true;
            if !to.exchange.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                to.exchange = Some(cx.waker().clone());
            }
            // What the connection wakes itself for while it is polled (hyper yielding) counts.
            std::mem::replace(&mut to.quiet, false)
        };
        let _ = self.poll_conn();
        self.wakers.lock().quiet = quiet;
    }

    /// Until the guard is dropped, the exchange's task polls what the connection feeds and drives
    /// the connection after anything it takes (or ends the exchange): the connection's wakes
    /// meanwhile are dropped, except those while it is driven.
    pub fn quiet(&self) -> Quiet<'_> {
        self.wakers.lock().quiet = true;
        Quiet(self)
    }

    /// The exchange is over (its response read or abandoned): the idle driver takes over.
    pub fn end_exchange(&self) {
        let driver = {
            let mut to = self.wakers.lock();
            to.in_exchange = false;
            to.quiet = false;
            to.exchange = None;
            to.driver.clone()
        };
        if let Some(driver) = driver {
            driver.wake();
        }
    }

    /// The idle driver: polls the connection while no exchange does, until it has finished.
    fn drive_when_idle(&self, cx: &mut Context<'_>) -> Poll<()> {
        {
            let mut to = self.wakers.lock();
            if !to.driver.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                to.driver = Some(cx.waker().clone());
            }
            if to.in_exchange {
                // Woken when the exchange ends.
                return Poll::Pending;
            }
        }
        self.poll_conn()
    }

    /// `future` (a response on this connection) polled with the connection driven in between,
    /// so what the connection reads is decoded on this task.
    pub async fn exchange<F: Future>(&self, future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        poll_fn(|cx| {
            let _quiet = self.quiet();
            if let Poll::Ready(out) = future.as_mut().poll(cx) {
                return Poll::Ready(out);
            }
            self.drive(cx);
            future.as_mut().poll(cx)
        })
        .await
    }
}

pub struct Quiet<'a>(&'a Link);

impl Drop for Quiet<'_> {
    fn drop(&mut self) {
        self.0.wakers.lock().quiet = false;
    }
}
