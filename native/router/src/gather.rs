//! A response body whose data frames, when several are already there, go out as one.
//!
//! hyper's client connection (its own task) hands a response body over one frame at a time: it
//! decodes one chunk, waits until that one is taken, then decodes the next. A burst of SSE events
//! in its read buffer would otherwise leave the router as one write per event, each a wake-up of
//! the client, where nginx writes what it read at once. So after taking a frame, `Gathered` gives
//! the event loop a turn (the connection's task, woken by the take, decodes the next frame) and
//! takes whatever came; it goes on while each turn brings more, up to `GATHER_TURNS` turns and
//! `GATHER_BYTES`.
//!
//! Nothing is held back waiting for the replica: a turn that brings nothing sends what there is,
//! so an event that arrives alone goes out after one turn of the event loop (other tasks that
//! were ready run first; no timer, no waiting for the network).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};

/// At most this much is gathered into one frame.
pub const GATHER_BYTES: usize = 64 * 1024;
/// At most this many event-loop turns are given up to gather one frame.
pub const GATHER_TURNS: u8 = 8;

pub struct Gathered<B: Body> {
    inner: B,
    /// The first frame's data, as it came (not copied unless a second one joins it).
    first: Option<Bytes>,
    /// The data of several frames, copied together.
    joined: Option<BytesMut>,
    /// Turns given up for the data gathered now, and whether the last turn brought any.
    turns: u8,
    progressed: bool,
    /// What the inner body gave after data that was gathered (its end, trailers or an error):
    /// given out on the next poll, after that data.
    held: Option<Option<Result<Frame<Bytes>, B::Error>>>,
    upstream: Upstream,
}

/// How far the inner body is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upstream {
    Open,
    /// Read to its end (what it gave may still be on its way out).
    Ended,
    Failed,
}

// Nothing in it is pinned: the inner body is Unpin, and what is held is moved out, never polled.
impl<B: Body + Unpin> Unpin for Gathered<B> {}

impl<B: Body<Data = Bytes> + Unpin> Gathered<B> {
    pub fn new(inner: B) -> Gathered<B> {
        Gathered { inner, first: None, joined: None, turns: 0, progressed: false, held: None, upstream: Upstream::Open }
    }

    /// Whether the inner body has ended or failed (what it gave may still be on its way out).
    pub fn upstream(&self) -> Upstream {
        self.upstream
    }

    fn gathered_len(&self) -> usize {
        match (&self.joined, &self.first) {
            (Some(joined), _) => joined.len(),
            (None, Some(first)) => first.len(),
            (None, None) => 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.first.is_none() && self.joined.is_none()
    }

    fn push(&mut self, data: Bytes) {
        self.progressed = true;
        if let Some(joined) = &mut self.joined {
            joined.extend_from_slice(&data);
        } else if let Some(first) = self.first.take() {
            let mut joined = BytesMut::with_capacity((first.len() + data.len()).clamp(4096, GATHER_BYTES));
            joined.extend_from_slice(&first);
            joined.extend_from_slice(&data);
            self.joined = Some(joined);
        } else {
            self.first = Some(data);
        }
    }

    /// What was gathered, as one data frame.
    fn take(&mut self) -> Option<Bytes> {
        self.turns = 0;
        self.progressed = false;
        self.joined.take().map(BytesMut::freeze).or_else(|| self.first.take())
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Gathered<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        if let Some(held) = this.held.take() {
            return Poll::Ready(held);
        }
        if this.upstream != Upstream::Open {
            return Poll::Ready(None);
        }
        loop {
            let not_data = match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        this.push(data);
                        if this.inner.is_end_stream() {
                            // A body of known length is complete: it is not polled again.
                            this.upstream = Upstream::Ended;
                        } else if this.gathered_len() < GATHER_BYTES {
                            continue;
                        }
                        return Poll::Ready(this.take().map(|d| Ok(Frame::data(d))));
                    }
                    Err(trailers) => Some(Ok(trailers)),
                },
                Poll::Ready(Some(Err(err))) => {
                    this.upstream = Upstream::Failed;
                    Some(Err(err))
                }
                Poll::Ready(None) => {
                    this.upstream = Upstream::Ended;
                    None
                }
                Poll::Pending => {
                    if this.is_empty() {
                        return Poll::Pending;
                    }
                    if this.progressed && this.turns < GATHER_TURNS {
                        // Polled again after the tasks that are ready now (the upstream
                        // connection's among them) have run.
                        this.turns += 1;
                        this.progressed = false;
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    return Poll::Ready(this.take().map(|d| Ok(Frame::data(d))));
                }
            };
            // Not data: what was gathered goes first.
            return match this.take() {
                Some(data) => {
                    this.held = Some(not_data);
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                None => Poll::Ready(not_data),
            };
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.held {
            Some(next) => next.is_none(),
            None => self.is_empty() && (self.upstream != Upstream::Open || self.inner.is_end_stream()),
        }
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = if self.upstream != Upstream::Open { SizeHint::with_exact(0) } else { self.inner.size_hint() };
        let gathered = self.gathered_len() as u64;
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper + gathered);
        }
        hint.set_lower(hint.lower() + gathered);
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};
    use std::task::Waker;

    /// A body fed by the test: frames are there or not (Pending) as the test says.
    #[derive(Clone, Default)]
    struct Feed(Arc<Mutex<FeedState>>);

    type Frames = VecDeque<Result<Frame<Bytes>, &'static str>>;
    type OnTake = Box<dyn FnMut(&mut Frames) + Send>;

    #[derive(Default)]
    struct FeedState {
        frames: Frames,
        ended: bool,
        waker: Option<Waker>,
        /// Called each time a frame is taken: the test's stand-in for the connection's task,
        /// which decodes its next frame once the last one was taken.
        on_take: Option<OnTake>,
    }

    impl Feed {
        fn send(&self, data: &'static str) {
            let mut s = self.0.lock().unwrap();
            s.frames.push_back(Ok(Frame::data(Bytes::from_static(data.as_bytes()))));
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        }
        fn end(&self) {
            let mut s = self.0.lock().unwrap();
            s.ended = true;
            if let Some(w) = s.waker.take() {
                w.wake();
            }
        }
    }

    impl Body for Feed {
        type Data = Bytes;
        type Error = &'static str;
        fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, &'static str>>> {
            let mut guard = self.0.lock().unwrap();
            let s = &mut *guard;
            match s.frames.pop_front() {
                Some(frame) => {
                    if let Some(on_take) = &mut s.on_take {
                        on_take(&mut s.frames);
                    }
                    Poll::Ready(Some(frame))
                }
                None if s.ended => Poll::Ready(None),
                None => {
                    s.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        }
    }

    /// Counts wake-ups, so a test can tell a yield (self-wake) from waiting on the feed.
    #[derive(Default)]
    struct CountingWaker(std::sync::atomic::AtomicUsize);
    impl std::task::Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn poll(body: &mut Gathered<Feed>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, &'static str>>> {
        Pin::new(body).poll_frame(cx)
    }

    fn data(p: Poll<Option<Result<Frame<Bytes>, &'static str>>>) -> String {
        match p {
            Poll::Ready(Some(Ok(frame))) => String::from_utf8(frame.into_data().expect("a data frame").to_vec()).unwrap(),
            other => panic!("expected data, got {:?}", other.map(|o| o.map(|r| r.map(|f| f.is_data())))),
        }
    }

    #[test]
    fn frames_that_are_there_go_out_as_one() {
        let feed = Feed::default();
        feed.send("data: a\n\n");
        feed.send("data: b\n\n");
        feed.send("data: c\n\n");
        let mut body = Gathered::new(feed.clone());
        let waker = Arc::new(CountingWaker::default());
        let w = Waker::from(waker.clone());
        let mut cx = Context::from_waker(&w);
        // All three were there: gathered, then one turn to see whether more come.
        assert!(poll(&mut body, &mut cx).is_pending());
        assert_eq!(waker.0.load(std::sync::atomic::Ordering::SeqCst), 1, "it woke itself: a yield, not a wait");
        assert_eq!(data(poll(&mut body, &mut cx)), "data: a\n\ndata: b\n\ndata: c\n\n", "a turn that brought nothing sends what there is");
        assert!(poll(&mut body, &mut cx).is_pending());
        feed.end();
        assert!(matches!(poll(&mut body, &mut cx), Poll::Ready(None)));
        assert!(body.upstream() == Upstream::Ended && body.is_end_stream());
    }

    #[test]
    fn frames_decoded_one_per_turn_are_gathered_while_each_turn_brings_more() {
        let feed = Feed::default();
        // Like hyper's connection task: the next frame appears only after the last was taken
        // (and here at once, as if its task ran in the turn given up).
        let mut left: VecDeque<&'static str> = ["2", "3", "4"].into();
        feed.0.lock().unwrap().on_take = Some(Box::new(move |frames| {
            if let Some(next) = left.pop_front() {
                frames.push_back(Ok(Frame::data(Bytes::from_static(next.as_bytes()))));
            }
        }));
        feed.send("1");
        let mut body = Gathered::new(feed.clone());
        let waker = Arc::new(CountingWaker::default());
        let w = Waker::from(waker.clone());
        let mut cx = Context::from_waker(&w);
        assert!(poll(&mut body, &mut cx).is_pending());
        assert_eq!(data(poll(&mut body, &mut cx)), "1234");
    }

    #[test]
    fn an_event_that_comes_alone_is_not_held_for_more() {
        let feed = Feed::default();
        let mut body = Gathered::new(feed.clone());
        let waker = Arc::new(CountingWaker::default());
        let w = Waker::from(waker.clone());
        let mut cx = Context::from_waker(&w);
        assert!(poll(&mut body, &mut cx).is_pending(), "nothing there yet");
        feed.send("data: only\n\n");
        assert!(poll(&mut body, &mut cx).is_pending(), "one turn for the others to run");
        assert_eq!(data(poll(&mut body, &mut cx)), "data: only\n\n", "sent after that one turn, nothing else having come");
    }

    #[test]
    fn the_turns_are_bounded_when_more_keeps_coming() {
        let feed = Feed::default();
        feed.send("x");
        let mut body = Gathered::new(feed.clone());
        let waker = Arc::new(CountingWaker::default());
        let w = Waker::from(waker.clone());
        let mut cx = Context::from_waker(&w);
        let mut yields = 0;
        let sent = loop {
            match poll(&mut body, &mut cx) {
                Poll::Pending => {
                    yields += 1;
                    feed.send("x");
                }
                ready => break data(ready),
            }
        };
        assert_eq!(yields, usize::from(GATHER_TURNS));
        assert_eq!(sent.len(), usize::from(GATHER_TURNS) + 1);
    }

    #[test]
    fn the_end_goes_with_the_last_data() {
        let feed = Feed::default();
        feed.send("last");
        feed.end();
        let mut body = Gathered::new(feed.clone());
        let w = Waker::from(Arc::new(CountingWaker::default()));
        let mut cx = Context::from_waker(&w);
        assert_eq!(data(poll(&mut body, &mut cx)), "last");
        assert!(body.is_end_stream(), "the server writes the data and the end together");
        assert_eq!(body.upstream(), Upstream::Ended);
        assert!(matches!(poll(&mut body, &mut cx), Poll::Ready(None)));
    }

    #[test]
    fn an_error_comes_after_the_data_before_it() {
        let feed = Feed::default();
        feed.send("partial");
        feed.0.lock().unwrap().frames.push_back(Err("reset"));
        let mut body = Gathered::new(feed.clone());
        let w = Waker::from(Arc::new(CountingWaker::default()));
        let mut cx = Context::from_waker(&w);
        assert_eq!(data(poll(&mut body, &mut cx)), "partial");
        assert!(!body.is_end_stream(), "the error is still to come");
        assert_eq!(body.upstream(), Upstream::Failed);
        assert!(matches!(poll(&mut body, &mut cx), Poll::Ready(Some(Err("reset")))));
    }

    #[test]
    fn at_most_gather_bytes_go_in_one_frame() {
        let feed = Feed::default();
        let chunk: &'static str = Box::leak("y".repeat(GATHER_BYTES / 2 + 1).into_boxed_str());
        feed.send(chunk);
        feed.send(chunk);
        feed.send(chunk);
        let mut body = Gathered::new(feed.clone());
        let w = Waker::from(Arc::new(CountingWaker::default()));
        let mut cx = Context::from_waker(&w);
        assert_eq!(data(poll(&mut body, &mut cx)).len(), 2 * chunk.len(), "sent once past the limit, without a turn");
    }

    #[test]
    fn the_size_hint_counts_what_is_gathered() {
        let feed = Feed::default();
        feed.send("abc");
        let mut body = Gathered::new(feed.clone());
        let w = Waker::from(Arc::new(CountingWaker::default()));
        let mut cx = Context::from_waker(&w);
        assert!(poll(&mut body, &mut cx).is_pending());
        assert_eq!(body.size_hint().lower(), 3);
        assert!(!body.is_end_stream());
    }
}
