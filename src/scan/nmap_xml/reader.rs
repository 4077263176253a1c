//! [`Capped`], the `BufRead` wrapper that caps how many bytes one XML event may consume, so
//! quick-xml's event buffer stays bounded whatever the input.

use std::io::{self, BufRead, Read};

/// BufRead adapter that lets one event (tag or text run) consume at most `cap` bytes, so
/// quick-xml's event buffer cannot grow with hostile input. `start_event` resets the count.
pub(super) struct Capped<R> {
    inner: R,
    cap: usize,
    used: usize,
    /// First byte of the current event: `<` means markup.
    pub(super) first: Option<u8>,
    pub(super) tripped: bool,
}

impl<R> Capped<R> {
    pub(super) fn new(inner: R, cap: usize) -> Self {
        Self {
            inner,
            cap,
            used: 0,
            first: None,
            tripped: false,
        }
    }

    pub(super) fn start_event(&mut self) {
        self.used = 0;
        self.first = None;
    }
}

impl<R: BufRead> BufRead for Capped<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.used >= self.cap {
            self.tripped = true;
            return Err(io::Error::other("nmap XML event exceeds max_text_len"));
        }
        let room = self.cap - self.used;
        let avail = self.inner.fill_buf()?;
        if self.first.is_none() {
            self.first = avail.first().copied();
        }
        Ok(&avail[..avail.len().min(room)])
    }

    fn consume(&mut self, amt: usize) {
        self.used = self.used.saturating_add(amt);
        self.inner.consume(amt);
    }
}

impl<R: BufRead> Read for Capped<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let avail = self.fill_buf()?;
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.consume(n);
        Ok(n)
    }
}
