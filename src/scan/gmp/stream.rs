//! Hands the async connection to the synchronous report parser: [`Watched`] bounds every read
//! (idle gap, whole-report deadline, cancellation) and [`Blocking`] turns it into a
//! `std::io::Read` for use inside `spawn_blocking`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::runtime::Handle;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::transport::Stream;
use super::Progress;

/// Why [`Watched`] refused to read on.
pub(super) const STOP_NONE: u8 = 0;
pub(super) const STOP_IDLE: u8 = 1;
pub(super) const STOP_DEADLINE: u8 = 2;
pub(super) const STOP_CANCELLED: u8 = 3;

/// The connection (after any bytes already buffered) with its reads bounded: no byte for `idle`,
/// the `deadline` passing or `cancel` firing make the next read fail with `TimedOut`, and the
/// reason is left in `stop`.
pub(super) struct Watched {
    prefix: Vec<u8>,
    pos: usize,
    inner: Stream,
    idle: Duration,
    idle_sleep: Pin<Box<Sleep>>,
    deadline: Pin<Box<Sleep>>,
    cancel: Pin<Box<WaitForCancellationFutureOwned>>,
    stop: Arc<AtomicU8>,
    progress: Arc<Progress>,
}

impl Watched {
    pub(super) fn new(
        inner: Stream,
        prefix: Vec<u8>,
        idle: Duration,
        total: Duration,
        cancel: CancellationToken,
        stop: Arc<AtomicU8>,
        progress: Arc<Progress>,
    ) -> Self {
        let now = Instant::now();
        Watched {
            prefix,
            pos: 0,
            inner,
            idle,
            idle_sleep: Box::pin(tokio::time::sleep_until(now + idle)),
            deadline: Box::pin(tokio::time::sleep_until(now + total)),
            cancel: Box::pin(cancel.cancelled_owned()),
            stop,
            progress,
        }
    }

    /// The connection and the buffered bytes not yet read.
    pub(super) fn into_parts(mut self) -> (Stream, Vec<u8>) {
        let rest = self.prefix.split_off(self.pos.min(self.prefix.len()));
        (self.inner, rest)
    }

    fn refuse(&self, why: u8) -> Poll<io::Result<()>> {
        self.stop.store(why, Ordering::Relaxed);
        let what = match why {
            STOP_IDLE => "gvmd sent nothing within the read timeout",
            STOP_DEADLINE => "the report took longer than the report timeout",
            _ => "cancelled",
        };
        // Not `Interrupted`: std readers retry that kind.
        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)))
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let stopped = this.stop.load(Ordering::Relaxed);
        if stopped != STOP_NONE {
            return this.refuse(stopped);
        }
        if this.cancel.as_mut().poll(cx).is_ready() {
            return this.refuse(STOP_CANCELLED);
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            return this.refuse(STOP_DEADLINE);
        }
        if this.pos < this.prefix.len() {
            let n = (this.prefix.len() - this.pos).min(buf.remaining());
            buf.put_slice(&this.prefix[this.pos..this.pos + n]);
            this.pos += n;
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len() - before;
                if n > 0 {
                    this.progress
                        .report_bytes
                        .fetch_add(n as u64, Ordering::Relaxed);
                    let next = Instant::now() + this.idle;
                    this.idle_sleep.as_mut().reset(next);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if this.idle_sleep.as_mut().poll(cx).is_ready() {
                    return this.refuse(STOP_IDLE);
                }
                Poll::Pending
            }
        }
    }
}

/// `std::io::Read` over [`Watched`]; use only on a blocking thread (`spawn_blocking`).
pub(super) struct Blocking {
    pub(super) inner: Watched,
    pub(super) handle: Handle,
}

impl io::Read for Blocking {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let inner = &mut self.inner;
        self.handle.block_on(inner.read(out))
    }
}
