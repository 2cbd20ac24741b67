//! A response body whose data frames, when several are already there, go out as one.
//!
//! hyper's client connection hands a response body over one frame at a time: it decodes one
//! chunk, waits until that one is taken, then decodes the next. A burst of SSE events that came in
//! one read from the replica would otherwise leave the router as one write per event, each a
//! wake-up of the client, where nginx writes what it read at once. So after taking a frame,
//! `Gathered` drives the connection (`drive`: on this task, link.rs), which decodes the next chunk
//! it already has, and takes that too; it goes on until the connection has nothing more decoded,
//! or `GATHER_BYTES`. Whether the body has ended is known in the same poll, so the last data and
//! the end of the body leave together.
//!
//! Nothing is held back waiting for the replica: once the connection has decoded all it read,
//! what there is goes out.
//!
//! The inner body is fed only by `drive` (the connection is polled nowhere else meanwhile), so it
//! is polled with a waker that wakes nothing: a wake from it could only be for what a drive in
//! this same poll put there, which is taken next; the connection's own events wake this task.

use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};

/// At most this much is gathered into one frame.
pub const GATHER_BYTES: usize = 64 * 1024;

pub struct Gathered<B: Body> {
    inner: B,
    /// The first frame's data, as it came (not copied unless a second one joins it).
    first: Option<Bytes>,
    /// The data of several frames, copied together.
    joined: Option<BytesMut>,
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
        Gathered { inner, first: None, joined: None, held: None, upstream: Upstream::Open }
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
        self.joined.take().map(BytesMut::freeze).or_else(|| self.first.take())
    }

    /// The next frame: the data that is there, gathered. `drive` polls what feeds the inner body
    /// (the upstream connection) on this task; it is called whenever the inner body has nothing,
    /// and once more after each frame taken, until the inner body has nothing even after it.
    pub fn poll_frame(&mut self, cx: &mut Context<'_>, mut drive: impl FnMut(&mut Context<'_>)) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        if let Some(held) = self.held.take() {
            return Poll::Ready(held);
        }
        if self.upstream != Upstream::Open {
            return Poll::Ready(None);
        }
        let mut driven = false;
        let mut fed = Context::from_waker(Waker::noop());
        loop {
            let not_data = match Pin::new(&mut self.inner).poll_frame(&mut fed) {
                Poll::Ready(Some(Ok(frame))) => match frame.into_data() {
                    Ok(data) => {
                        self.push(data);
                        driven = false;
                        if self.inner.is_end_stream() {
                            // A body of known length is complete: it is not polled again.
                            self.upstream = Upstream::Ended;
                        } else if self.gathered_len() < GATHER_BYTES {
                            continue;
                        }
                        return Poll::Ready(self.take().map(|d| Ok(Frame::data(d))));
                    }
                    Err(trailers) => Some(Ok(trailers)),
                },
                Poll::Ready(Some(Err(err))) => {
                    self.upstream = Upstream::Failed;
                    Some(Err(err))
                }
                Poll::Ready(None) => {
                    self.upstream = Upstream::Ended;
                    None
                }
                Poll::Pending if !driven => {
                    // The connection may have more of what it read still to decode.
                    drive(cx);
                    driven = true;
                    continue;
                }
                Poll::Pending => {
                    return match self.take() {
                        Some(data) => Poll::Ready(Some(Ok(Frame::data(data)))),
                        None => Poll::Pending,
                    };
                }
            };
            // Not data: what was gathered goes first.
            return match self.take() {
                Some(data) => {
                    self.held = Some(not_data);
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                None => Poll::Ready(not_data),
            };
        }
    }

    pub fn is_end_stream(&self) -> bool {
        match &self.held {
            Some(next) => next.is_none(),
            None => self.is_empty() && (self.upstream != Upstream::Open || self.inner.is_end_stream()),
        }
    }

    pub fn size_hint(&self) -> SizeHint {
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

    #[derive(Default)]
    struct FeedState {
        frames: Frames,
        ended: bool,
        /// What driving the connection decodes next, one frame a drive (as hyper's connection
        /// decodes one chunk, then waits for it to be taken).
        decodable: VecDeque<&'static str>,
        drives: usize,
    }

    impl Feed {
        fn send(&self, data: &'static str) {
            self.0.lock().unwrap().frames.push_back(Ok(Frame::data(Bytes::from_static(data.as_bytes()))));
        }
        fn end(&self) {
            self.0.lock().unwrap().ended = true;
        }
        /// The test's stand-in for driving the upstream connection.
        fn drive(&self) {
            let mut s = self.0.lock().unwrap();
            s.drives += 1;
            if let Some(next) = s.decodable.pop_front() {
                s.frames.push_back(Ok(Frame::data(Bytes::from_static(next.as_bytes()))));
            }
        }
        fn drives(&self) -> usize {
            self.0.lock().unwrap().drives
        }
    }

    impl Body for Feed {
        type Data = Bytes;
        type Error = &'static str;
        fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, &'static str>>> {
            let mut s = self.0.lock().unwrap();
            match s.frames.pop_front() {
                Some(frame) => Poll::Ready(Some(frame)),
                None if s.ended => Poll::Ready(None),
                None => Poll::Pending,
            }
        }
    }

    fn poll(body: &mut Gathered<Feed>, feed: &Feed) -> Poll<Option<Result<Frame<Bytes>, &'static str>>> {
        let mut cx = Context::from_waker(Waker::noop());
        body.poll_frame(&mut cx, |_| feed.drive())
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
        assert_eq!(data(poll(&mut body, &feed)), "data: a\n\ndata: b\n\ndata: c\n\n", "a drive that brought nothing sends what there is");
        assert_eq!(feed.drives(), 1);
        assert!(poll(&mut body, &feed).is_pending());
        feed.end();
        assert!(matches!(poll(&mut body, &feed), Poll::Ready(None)));
        assert!(body.upstream() == Upstream::Ended && body.is_end_stream());
    }

    #[test]
    fn frames_decoded_one_per_drive_are_gathered_while_each_drive_brings_more() {
        let feed = Feed::default();
        feed.0.lock().unwrap().decodable = ["2", "3", "4"].into();
        feed.send("1");
        let mut body = Gathered::new(feed.clone());
        assert_eq!(data(poll(&mut body, &feed)), "1234");
        assert_eq!(feed.drives(), 4, "once more after the last frame, which brought nothing");
    }

    #[test]
    fn an_event_that_comes_alone_is_not_held_for_more() {
        let feed = Feed::default();
        let mut body = Gathered::new(feed.clone());
        assert!(poll(&mut body, &feed).is_pending(), "nothing there yet, even after a drive");
        feed.send("data: only\n\n");
        assert_eq!(data(poll(&mut body, &feed)), "data: only\n\n", "sent in the poll that found it");
    }

    #[test]
    fn the_end_goes_with_the_last_data() {
        let feed = Feed::default();
        feed.send("last");
        feed.end();
        let mut body = Gathered::new(feed.clone());
        assert_eq!(data(poll(&mut body, &feed)), "last");
        assert!(body.is_end_stream(), "the server writes the data and the end together");
        assert_eq!(body.upstream(), Upstream::Ended);
        assert!(matches!(poll(&mut body, &feed), Poll::Ready(None)));
    }

    #[test]
    fn the_end_a_drive_decodes_after_the_last_data_goes_with_it() {
        let feed = Feed::default();
        feed.send("last");
        let mut body = Gathered::new(feed.clone());
        // As hyper's connection: the end of the body is decoded once the last chunk was taken.
        let mut cx = Context::from_waker(Waker::noop());
        let sent = data(body.poll_frame(&mut cx, |_| feed.end()));
        assert_eq!(sent, "last");
        assert!(body.is_end_stream());
    }

    #[test]
    fn an_error_comes_after_the_data_before_it() {
        let feed = Feed::default();
        feed.send("partial");
        feed.0.lock().unwrap().frames.push_back(Err("reset"));
        let mut body = Gathered::new(feed.clone());
        assert_eq!(data(poll(&mut body, &feed)), "partial");
        assert!(!body.is_end_stream(), "the error is still to come");
        assert_eq!(body.upstream(), Upstream::Failed);
        assert!(matches!(poll(&mut body, &feed), Poll::Ready(Some(Err("reset")))));
    }

    #[test]
    fn at_most_gather_bytes_go_in_one_frame() {
        let feed = Feed::default();
        let chunk: &'static str = Box::leak("y".repeat(GATHER_BYTES / 2 + 1).into_boxed_str());
        feed.send(chunk);
        feed.send(chunk);
        feed.send(chunk);
        let mut body = Gathered::new(feed.clone());
        assert_eq!(data(poll(&mut body, &feed)).len(), 2 * chunk.len(), "sent once past the limit");
        assert_eq!(data(poll(&mut body, &feed)).len(), chunk.len());
    }

    #[test]
    fn the_size_hint_is_the_inner_bodys_until_it_ends() {
        let feed = Feed::default();
        let mut body = Gathered::new(feed.clone());
        assert!(poll(&mut body, &feed).is_pending());
        assert_eq!(body.size_hint().exact(), None);
        feed.end();
        assert!(matches!(poll(&mut body, &feed), Poll::Ready(None)));
        assert_eq!(body.size_hint().exact(), Some(0));
    }
}
