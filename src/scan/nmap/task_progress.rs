//! nmap's `<taskprogress>` tags, picked out of the XML stream as it arrives (for progress logging
//! and [`super::Progress`]).

/// One `<taskprogress>` seen in the stream.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Tick {
    pub(super) task: String,
    pub(super) percent: f64,
    pub(super) remaining: Option<u64>,
}

/// Finds `<taskprogress …/>` tags in the growing stdout buffer, each once, wherever the
/// chunks were split.
#[derive(Debug, Default)]
pub(super) struct TaskScan {
    pos: usize,
}

impl TaskScan {
    const OPEN: &'static [u8] = b"<taskprogress ";
    /// A tag longer than this is not nmap's; skip it rather than wait for its end.
    const MAX_TAG: usize = 4096;

    pub(super) fn feed(&mut self, buf: &[u8], on_tick: &mut impl FnMut(Tick)) {
        loop {
            let from = self.pos.min(buf.len());
            let Some(i) = find(&buf[from..], Self::OPEN) else {
                // A tag name split across chunks is found next time.
                self.pos = buf.len().saturating_sub(Self::OPEN.len() - 1).max(from);
                return;
            };
            let start = from + i;
            match find(&buf[start..], b">") {
                Some(j) => {
                    if let Some(t) = parse_tick(&buf[start..start + j]) {
                        on_tick(t);
                    }
                    self.pos = start + j + 1;
                }
                None if buf.len() - start > Self::MAX_TAG => self.pos = start + 1,
                None => {
                    self.pos = start;
                    return;
                }
            }
        }
    }
}

fn parse_tick(tag: &[u8]) -> Option<Tick> {
    let attr = |name: &str| {
        let key = format!(" {name}=\"");
        let at = find(tag, key.as_bytes())? + key.len();
        let len = find(&tag[at..], b"\"")?;
        std::str::from_utf8(&tag[at..at + len]).ok()
    };
    Some(Tick {
        task: attr("task").unwrap_or("?").to_string(),
        percent: attr("percent")?.parse().ok()?,
        remaining: attr("remaining").and_then(|r| r.parse().ok()),
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
