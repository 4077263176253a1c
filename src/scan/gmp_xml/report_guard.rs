//! [`Guard`], the `BufRead` wrapper under the report parser that counts bytes and stops
//! quick-xml at the document and token caps.

use std::io::{self, BufRead, Read};

/// Counts bytes and refuses to hand quick-xml more than the byte and token caps allow, so its
/// event buffer never grows past `max_token_bytes` (plus one read) whatever the input.
#[derive(Debug)]
pub(super) struct Guard<R> {
    pub(super) inner: R,
    pub(super) pos: u64,
    /// Position where the current token started (end of the previous event).
    pub(super) mark: u64,
    pub(super) max_bytes: u64,
    pub(super) max_token: u64,
    pub(super) tripped: Option<(&'static str, u64)>,
    /// The inner reader reported end of input (so an unclosed construct means truncation).
    pub(super) eof: bool,
}

impl<R: BufRead> Read for Guard<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = {
            let avail = self.fill_buf()?;
            let n = avail.len().min(out.len());
            out[..n].copy_from_slice(&avail[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Guard<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.tripped.is_some() {
            return Err(io::Error::other("GMP XML limit exceeded"));
        }
        let total_left = self.max_bytes.saturating_sub(self.pos);
        let token_left = self
            .mark
            .saturating_add(self.max_token)
            .saturating_sub(self.pos);
        let avail = self.inner.fill_buf()?.len() as u64;
        self.eof = avail == 0;
        if avail > 0 && total_left.min(token_left) == 0 {
            self.tripped = Some(if total_left == 0 {
                ("document bytes", self.max_bytes)
            } else {
                ("token bytes", self.max_token)
            });
            return Err(io::Error::other("GMP XML limit exceeded"));
        }
        let n = avail.min(total_left).min(token_left) as usize;
        // A second fill_buf on a non-empty buffer returns it again without I/O.
        Ok(&self.inner.fill_buf()?[..n])
    }

    fn consume(&mut self, amt: usize) {
        self.inner.consume(amt);
        self.pos += amt as u64;
    }
}
