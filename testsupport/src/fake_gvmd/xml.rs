//! Just enough XML for the fake gvmd: [`CommandSplitter`] finds where a GMP command ends in the
//! byte stream (GMP has no length prefix: a command is over when its root element closes), and
//! string lookups of a command's root name, an element's text and an attribute. Commands are
//! what a GMP client writes: elements, attributes in quotes, escaped text; no comments or CDATA.

/// Where the splitter is inside the markup; survives chunk boundaries.
#[derive(Debug, Clone, Copy)]
enum Scan {
    Text,
    /// Just after `<`.
    Lt,
    /// Inside a start tag; `quote` is the open attribute quote (0: none), `slash` whether the
    /// last byte outside quotes was `/`.
    Open {
        quote: u8,
        slash: bool,
    },
    /// Inside an end tag.
    Close,
    /// Inside `<?…>` or `<!…>`, skipped to the next `>`.
    Skip,
}

/// Finds where one command ends. Feed bytes with [`push`](Self::push): `Some(n)` when the first
/// `n` bytes of *that* chunk complete the command (the rest belongs to the next one; use a new
/// splitter for it).
#[derive(Debug)]
pub(super) struct CommandSplitter {
    max_bytes: usize,
    used: usize,
    depth: u32,
    state: Scan,
}

impl CommandSplitter {
    pub(super) fn new(max_bytes: usize) -> CommandSplitter {
        CommandSplitter {
            max_bytes,
            used: 0,
            depth: 0,
            state: Scan::Text,
        }
    }

    /// `Ok(Some(n))` once the command ends at byte `n` of `chunk`; `Ok(None)` when it goes on;
    /// an error when the command is larger than the limit or an end tag has no start.
    pub(super) fn push(&mut self, chunk: &[u8]) -> Result<Option<usize>, String> {
        for (i, &b) in chunk.iter().enumerate() {
            self.used += 1;
            if self.used > self.max_bytes {
                return Err(format!("a command longer than {} bytes", self.max_bytes));
            }
            self.state = match (self.state, b) {
                (Scan::Text, b'<') => Scan::Lt,
                (Scan::Text, _) => Scan::Text,
                (Scan::Lt, b'/') => Scan::Close,
                (Scan::Lt, b'?' | b'!') => Scan::Skip,
                (Scan::Lt, _) => Scan::Open {
                    quote: 0,
                    slash: false,
                },
                (Scan::Open { quote: 0, slash }, b'>') => {
                    if slash && self.depth == 0 {
                        return Ok(Some(i + 1));
                    }
                    if !slash {
                        self.depth += 1;
                    }
                    Scan::Text
                }
                (Scan::Open { quote: 0, .. }, b'"' | b'\'') => Scan::Open {
                    quote: b,
                    slash: false,
                },
                (Scan::Open { quote: 0, .. }, _) => Scan::Open {
                    quote: 0,
                    slash: b == b'/',
                },
                (Scan::Open { quote, .. }, _) if b == quote => Scan::Open {
                    quote: 0,
                    slash: false,
                },
                (open @ Scan::Open { .. }, _) => open,
                (Scan::Close, b'>') => {
                    self.depth = self
                        .depth
                        .checked_sub(1)
                        .ok_or("an end tag without a start tag")?;
                    if self.depth == 0 {
                        return Ok(Some(i + 1));
                    }
                    Scan::Text
                }
                (Scan::Close, _) => Scan::Close,
                (Scan::Skip, b'>') => Scan::Text,
                (Scan::Skip, _) => Scan::Skip,
            };
        }
        Ok(None)
    }
}

/// The five predefined entities back to their characters.
fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

/// The root element's name (the command).
pub(super) fn root_name(doc: &str) -> String {
    let s = doc.trim_start().trim_start_matches('<');
    let end = s
        .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
        .unwrap_or(s.len());
    s[..end].to_owned()
}

/// Text of the first `<tag>…</tag>`.
pub(super) fn text(doc: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = doc.find(&open)? + open.len();
    let end = doc[start..].find(&format!("</{tag}>"))? + start;
    Some(unescape(&doc[start..end]))
}

/// Attribute `key` of the first `<elem …>`.
pub(super) fn attr(doc: &str, elem: &str, key: &str) -> Option<String> {
    let open = format!("<{elem}");
    let mut from = 0;
    let tag = loop {
        let i = doc[from..].find(&open)? + from;
        let after = doc[i + open.len()..].chars().next()?;
        if after.is_whitespace() || after == '/' || after == '>' {
            let end = doc[i..].find('>')? + i;
            break &doc[i..end];
        }
        from = i + open.len();
    };
    let pat = format!(" {key}=\"");
    let start = tag.find(&pat)? + pat.len();
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}
