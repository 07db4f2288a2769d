//! Two deadlines where hyper has one timer: the wait for a request's first
//! byte, and the time its headers have once that byte came.
//!
//! hyper's HTTP/1 `header_read_timeout` starts when the connection starts
//! waiting for a request head, whether or not a byte has come, so the
//! header deadline is also the keep-alive idle timeout (a separate idle
//! timeout is hyperium/hyper#1628). Ten seconds of idle is shorter than the
//! idle pools of real clients (reqwest and Go 90 s, OkHttp 5 min), and a
//! client that reuses a connection just as the server closes it gets a
//! reset. So each connection gets:
//!
//! - a [`Watched`] stream that notes when bytes come in;
//! - a [`HeadTimer`] given to hyper as its timer: hyper arms it each time it
//!   waits for a head, and the deadline it hands back is
//!   - the first byte's time + `header` once a byte came (a slow sender
//!     still has `header` to finish, however long it idled before);
//!   - otherwise the arming time + `first` for a connection's first request
//!     (a client that connects and says nothing is let go soon) or + `idle`
//!     for the next request on a kept-alive one.
//!
//! Bytes hyper already read past the previous request (pipelining) came
//! before the arming, so such a head gets the idle deadline rather than the
//! header one: still a deadline.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// The deadlines of the wait for a request head.
#[derive(Debug, Clone, Copy)]
pub struct HeadDeadlines {
    /// A new connection's wait for its first request's first byte.
    pub first: Duration,
    /// A kept-alive connection's wait for its next request's first byte.
    pub idle: Duration,
    /// The time a request's headers have once their first byte came.
    pub header: Duration,
}

/// What a connection's stream and its timer share. Times are nanoseconds
/// since `start`, plus one (0: not yet).
#[derive(Debug)]
struct Clock {
    start: Instant,
    /// When hyper last started waiting for a head.
    armed: AtomicU64,
    /// When the first byte after that came.
    first_byte: AtomicU64,
    /// How many heads hyper has waited for (1: the connection's first).
    heads: AtomicU64,
}

impl Clock {
    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX - 1) + 1
    }

    fn at(&self, mark: u64) -> Instant {
        self.start + Duration::from_nanos(mark.saturating_sub(1))
    }
}

/// One connection's clock: the stream wrapper and hyper's timer from it.
pub fn watch<S>(stream: S, deadlines: HeadDeadlines) -> (Watched<S>, HeadTimer) {
    let clock = Arc::new(Clock {
        start: Instant::now(),
        armed: AtomicU64::new(0),
        first_byte: AtomicU64::new(0),
        heads: AtomicU64::new(0),
    });
    (
        Watched {
            inner: stream,
            clock: clock.clone(),
        },
        HeadTimer { clock, deadlines },
    )
}

/// A stream that notes the time of the first bytes read after each arming.
#[derive(Debug)]
pub struct Watched<S> {
    inner: S,
    clock: Arc<Clock>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before && self.clock.first_byte.load(Ordering::Relaxed) == 0 {
            let now = self.clock.now();
            self.clock.first_byte.store(now, Ordering::Relaxed);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// hyper's timer for one connection (hyper uses it for the head deadline
/// only). Whatever deadline hyper asks for, the deadline is [`HeadDeadlines`]'.
#[derive(Debug, Clone)]
pub struct HeadTimer {
    clock: Arc<Clock>,
    deadlines: HeadDeadlines,
}

impl HeadTimer {
    /// Hyper starts waiting for a head.
    fn arm(&self) -> HeadSleep {
        let now = self.clock.now();
        self.clock.armed.store(now, Ordering::Relaxed);
        self.clock.first_byte.store(0, Ordering::Relaxed);
        let heads = self.clock.heads.fetch_add(1, Ordering::Relaxed) + 1;
        let wait = if heads == 1 {
            self.deadlines.first
        } else {
            self.deadlines.idle
        };
        let until = self.clock.at(now) + wait;
        HeadSleep {
            clock: self.clock.clone(),
            wait,
            header: self.deadlines.header,
            until,
            sleep: Box::pin(tokio::time::sleep_until(until)),
        }
    }
}

impl hyper::rt::Timer for HeadTimer {
    fn sleep(&self, _: Duration) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(self.arm())
    }

    fn sleep_until(&self, _: std::time::Instant) -> Pin<Box<dyn hyper::rt::Sleep>> {
        Box::pin(self.arm())
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn hyper::rt::Sleep>>, _: std::time::Instant) {
        *sleep = Box::pin(self.arm());
    }
}

/// The head deadline: moves from the wait's end to the first byte's time +
/// `header` when a byte comes (hyper polls it after every read that leaves
/// the head unfinished).
pub struct HeadSleep {
    clock: Arc<Clock>,
    wait: Duration,
    header: Duration,
    until: Instant,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl HeadSleep {
    fn deadline(&self) -> Instant {
        match self.clock.first_byte.load(Ordering::Relaxed) {
            0 => self.clock.at(self.clock.armed.load(Ordering::Relaxed)) + self.wait,
            byte => self.clock.at(byte) + self.header,
        }
    }
}

impl Future for HeadSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let deadline = self.deadline();
        if deadline != self.until {
            self.until = deadline;
            self.sleep.as_mut().reset(deadline);
        }
        self.sleep.as_mut().poll(cx)
    }
}

impl hyper::rt::Sleep for HeadSleep {}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const D: HeadDeadlines = HeadDeadlines {
        first: Duration::from_secs(10),
        idle: Duration::from_secs(60),
        header: Duration::from_secs(10),
    };

    fn polled(sleep: &mut HeadSleep) -> Poll<()> {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        Pin::new(sleep).poll(&mut cx)
    }

    #[tokio::test]
    async fn a_connection_waits_first_then_idle_and_a_started_head_has_header() {
        let (mut client, server) = tokio::io::duplex(64);
        let (mut watched, timer) = watch(server, D);

        // A new connection's first request.
        let first = timer.arm();
        let armed = first.clock.at(first.clock.armed.load(Ordering::Relaxed));
        assert_eq!(first.deadline(), armed + D.first);
        // The next request on the kept-alive connection: the idle wait,
        // not the header deadline.
        let mut next = timer.arm();
        let armed = next.clock.at(next.clock.armed.load(Ordering::Relaxed));
        assert_eq!(next.deadline(), armed + D.idle);
        assert!(polled(&mut next).is_pending());

        // A byte comes: the head has `header` from it, and the sleep
        // hyper polls moves to that deadline.
        client.write_all(b"G").await.unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(watched.read(&mut buf).await.unwrap(), 1);
        let byte = next.clock.at(next.clock.first_byte.load(Ordering::Relaxed));
        assert!(byte >= armed);
        assert_eq!(next.deadline(), byte + D.header);
        assert!(polled(&mut next).is_pending());
        assert_eq!(next.until, byte + D.header);
        // Later bytes of the same head do not move it.
        client.write_all(b"ET").await.unwrap();
        assert_eq!(watched.read(&mut buf).await.unwrap(), 2);
        assert_eq!(next.deadline(), byte + D.header);

        // Arming again forgets the byte (it belonged to the previous head).
        let again = timer.arm();
        let armed = again.clock.at(again.clock.armed.load(Ordering::Relaxed));
        assert_eq!(again.deadline(), armed + D.idle);
    }
}
