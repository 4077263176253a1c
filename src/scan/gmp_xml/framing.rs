//! Response framing: [`ResponseSplitter`] finds where each GMP response ends in a byte stream
//! (GMP has no length prefix), byte by byte and across chunk boundaries.

use super::Error;

/// Byte-level scanner state; survives chunk boundaries anywhere (inside names, quoted attribute
/// values, comments, CDATA, processing instructions and DOCTYPE internal subsets).
#[derive(Clone, Copy, Debug)]
enum Scan {
    Text,
    Lt,
    Bang { buf: [u8; 7], len: u8 },
    Comment { dashes: u8 },
    CData { brackets: u8 },
    Pi { question: bool },
    Decl { quote: u8, brackets: u32 },
    Open { quote: u8, slash: bool },
    Close,
}

/// Finds where one GMP response ends. GMP has no length prefix or delimiter: a response is over
/// when its root element closes (or a self-closing root such as `<x_response status="400" .../>`
/// ends). Feed bytes with [`push`](Self::push); it returns `Some(n)` when the first `n` bytes of
/// *that* chunk complete the document, after which the splitter is reset and the rest of the
/// chunk (`&chunk[n..]`) belongs to the next response and should be pushed again.
/// After any error the splitter stays failed: drop the connection.
#[derive(Debug)]
pub struct ResponseSplitter {
    max_bytes: usize,
    max_depth: u32,
    state: Scan,
    depth: u32,
    used: usize,
    started: bool,
    failed: bool,
}

impl ResponseSplitter {
    pub(crate) const DEFAULT_MAX_DEPTH: u32 = 256;

    pub fn new(max_bytes: usize) -> Self {
        Self::with_max_depth(max_bytes, Self::DEFAULT_MAX_DEPTH)
    }

    pub fn with_max_depth(max_bytes: usize, max_depth: u32) -> Self {
        ResponseSplitter {
            max_bytes,
            max_depth,
            state: Scan::Text,
            depth: 0,
            used: 0,
            started: false,
            failed: false,
        }
    }

    /// Bytes of the current (incomplete) response seen so far.
    pub fn buffered(&self) -> usize {
        self.used
    }

    /// True once a `<` of the current response has been seen (whitespace alone does not count).
    pub fn in_progress(&self) -> bool {
        self.started
    }

    /// Call at end of input: a response that was started but not finished is `Truncated`.
    pub fn finish(&self) -> Result<(), Error> {
        if self.started {
            return Err(Error::Truncated {
                offset: self.used as u64,
            });
        }
        Ok(())
    }

    pub fn push(&mut self, chunk: &[u8]) -> Result<Option<usize>, Error> {
        if self.failed {
            return Err(Error::Unexpected {
                expected: "a new connection after a framing error",
                found: "more data".to_owned(),
            });
        }
        let r = self.push_inner(chunk);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn push_inner(&mut self, chunk: &[u8]) -> Result<Option<usize>, Error> {
        let mut i = 0;
        while i < chunk.len() {
            if matches!(self.state, Scan::Text) && self.depth > 0 {
                // Fast path through character data inside the root.
                match chunk[i..].iter().position(|&b| b == b'<') {
                    Some(k) => {
                        self.account(k)?;
                        i += k;
                    }
                    None => {
                        self.account(chunk.len() - i)?;
                        return Ok(None);
                    }
                }
            }
            let b = chunk[i];
            self.account(1)?;
            i += 1;
            if self.step(b)? {
                self.state = Scan::Text;
                self.depth = 0;
                self.used = 0;
                self.started = false;
                return Ok(Some(i));
            }
        }
        Ok(None)
    }

    fn account(&mut self, n: usize) -> Result<(), Error> {
        self.used = self.used.saturating_add(n);
        if self.used > self.max_bytes {
            return Err(Error::Limit {
                what: "response bytes",
                limit: self.max_bytes as u64,
            });
        }
        Ok(())
    }

    /// One byte; `Ok(true)` when it completed the document.
    fn step(&mut self, b: u8) -> Result<bool, Error> {
        match self.state {
            Scan::Text => {
                if b == b'<' {
                    self.state = Scan::Lt;
                    self.started = true;
                } else if self.depth == 0 && !b.is_ascii_whitespace() {
                    return Err(Error::Unexpected {
                        expected: "'<' starting a GMP response",
                        found: format!("byte 0x{b:02x} outside the root element"),
                    });
                }
            }
            Scan::Lt => {
                self.state = match b {
                    b'/' => Scan::Close,
                    b'?' => Scan::Pi { question: false },
                    b'!' => Scan::Bang {
                        buf: [0; 7],
                        len: 0,
                    },
                    _ => Scan::Open {
                        quote: 0,
                        slash: false,
                    },
                }
            }
            Scan::Bang { mut buf, len } => {
                let len = usize::from(len);
                buf[len] = b;
                let seen = &buf[..=len];
                if seen == b"--" {
                    self.state = Scan::Comment { dashes: 0 };
                } else if seen == b"[CDATA[" {
                    self.state = Scan::CData { brackets: 0 };
                } else if b"--".starts_with(seen) || b"[CDATA[".starts_with(seen) {
                    self.state = Scan::Bang {
                        buf,
                        len: (len + 1) as u8,
                    };
                } else {
                    // <!DOCTYPE ...> or similar: replay the bytes in declaration mode.
                    self.state = Scan::Decl {
                        quote: 0,
                        brackets: 0,
                    };
                    for &c in seen {
                        if self.step(c)? {
                            return Ok(true);
                        }
                    }
                }
            }
            Scan::Comment { dashes } => {
                self.state = match b {
                    b'-' => Scan::Comment {
                        dashes: (dashes + 1).min(2),
                    },
                    b'>' if dashes == 2 => Scan::Text,
                    _ => Scan::Comment { dashes: 0 },
                }
            }
            Scan::CData { brackets } => {
                self.state = match b {
                    b']' => Scan::CData {
                        brackets: (brackets + 1).min(2),
                    },
                    b'>' if brackets == 2 => Scan::Text,
                    _ => Scan::CData { brackets: 0 },
                }
            }
            Scan::Pi { question } => {
                self.state = match b {
                    b'?' => Scan::Pi { question: true },
                    b'>' if question => Scan::Text,
                    _ => Scan::Pi { question: false },
                }
            }
            Scan::Decl { quote, brackets } => {
                self.state = if quote != 0 {
                    Scan::Decl {
                        quote: if b == quote { 0 } else { quote },
                        brackets,
                    }
                } else {
                    match b {
                        b'"' | b'\'' => Scan::Decl { quote: b, brackets },
                        b'[' => Scan::Decl {
                            quote,
                            brackets: brackets.saturating_add(1),
                        },
                        b']' => Scan::Decl {
                            quote,
                            brackets: brackets.saturating_sub(1),
                        },
                        b'>' if brackets == 0 => Scan::Text,
                        _ => Scan::Decl { quote, brackets },
                    }
                }
            }
            Scan::Open { quote, slash } => {
                if quote != 0 {
                    if b == quote {
                        self.state = Scan::Open {
                            quote: 0,
                            slash: false,
                        };
                    }
                } else {
                    match b {
                        b'"' | b'\'' => {
                            self.state = Scan::Open {
                                quote: b,
                                slash: false,
                            }
                        }
                        b'/' => {
                            self.state = Scan::Open {
                                quote: 0,
                                slash: true,
                            }
                        }
                        b'>' => {
                            self.state = Scan::Text;
                            if slash {
                                return Ok(self.depth == 0);
                            }
                            if self.depth >= self.max_depth {
                                return Err(Error::Limit {
                                    what: "response element depth",
                                    limit: u64::from(self.max_depth),
                                });
                            }
                            self.depth += 1;
                        }
                        _ => {
                            self.state = Scan::Open {
                                quote: 0,
                                slash: false,
                            }
                        }
                    }
                }
            }
            Scan::Close => {
                if b == b'>' {
                    self.state = Scan::Text;
                    if self.depth == 0 {
                        return Err(Error::Unexpected {
                            expected: "a start tag",
                            found: "an end tag outside any element".to_owned(),
                        });
                    }
                    self.depth -= 1;
                    return Ok(self.depth == 0);
                }
            }
        }
        Ok(false)
    }
}
