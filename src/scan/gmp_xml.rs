//! GMP XML: command builders, response framing and parsers, streaming report parser; pure, bounded.
//! Owns every byte of Greenbone Management Protocol XML that Stinger writes or reads (PROTOCOLS.md §2).
//! No sockets, no DOM: it reads only the `BufRead` or byte slice it is handed, and every input is
//! capped (bytes, element depth, token size, result count) so a hostile or broken gvmd cannot
//! exhaust memory. The session logic (connect, authenticate, poll) lives in `scan/gmp.rs`.
#![allow(dead_code)]

use std::io::{self, BufRead, Read};

use quick_xml::errors::{IllFormedError, SyntaxError};
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

// === Errors ===

/// Everything that can go wrong turning GMP XML into values. Never carries a password.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("malformed GMP XML at byte {offset}: {message}")]
    Xml { offset: u64, message: String },
    #[error(
        "GMP XML ended early at byte {offset}; gvmd closed the connection or the read timed out mid-response"
    )]
    Truncated { offset: u64 },
    #[error("gvmd rejected {command} with status {code}: {text}")]
    Status {
        command: String,
        code: u16,
        text: String,
    },
    #[error("unexpected GMP XML: expected {expected}, found {found}")]
    Unexpected {
        expected: &'static str,
        found: String,
    },
    #[error(
        "GMP XML exceeds the {what} limit of {limit}; raise the limit if the input is legitimate"
    )]
    Limit { what: &'static str, limit: u64 },
    #[error("GMP XML lacks the required {element}")]
    Missing { element: &'static str },
    #[error("reading GMP XML failed at byte {offset}: {message}")]
    Io { offset: u64, message: String },
}

impl Error {
    /// Stable snake_case label for `stinger_errors_total{kind}`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Xml { .. } => "xml",
            Error::Truncated { .. } => "truncated",
            Error::Status { .. } => "status",
            Error::Unexpected { .. } => "unexpected",
            Error::Limit { .. } => "limit",
            Error::Missing { .. } => "missing",
            Error::Io { .. } => "io",
        }
    }
}

/// Server-supplied text put into an error, cut short so a hostile peer cannot bloat logs.
fn snippet(s: &str) -> String {
    const MAX: usize = 80;
    let s = s.trim();
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

fn doctype_error() -> Error {
    Error::Unexpected {
        expected: "GMP XML without a DOCTYPE (entities are never expanded)",
        found: "<!DOCTYPE …>".to_owned(),
    }
}

/// Maps a quick-xml error. `at_eof`: the input is exhausted, so an unclosed construct means truncation.
fn map_qx(e: quick_xml::Error, offset: u64, at_eof: bool) -> Error {
    match e {
        quick_xml::Error::Io(io) => Error::Io {
            offset,
            message: io.to_string(),
        },
        quick_xml::Error::Syntax(SyntaxError::InvalidBangMarkup) if !at_eof => Error::Xml {
            offset,
            message: SyntaxError::InvalidBangMarkup.to_string(),
        },
        quick_xml::Error::Syntax(_)
        | quick_xml::Error::IllFormed(IllFormedError::UnclosedReference)
            if at_eof =>
        {
            Error::Truncated { offset }
        }
        other => Error::Xml {
            offset,
            message: other.to_string(),
        },
    }
}

// === Command builders ===

/// XML-escapes `s` into `out`. Characters XML 1.0 cannot carry (most C0 controls) are dropped;
/// in attribute values tab/CR/LF become character references so they survive normalisation.
pub(crate) fn escape_into(out: &mut String, s: &str, attribute: bool) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' if attribute => out.push_str("&#9;"),
            '\n' if attribute => out.push_str("&#10;"),
            '\r' if attribute => out.push_str("&#13;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
}

fn elem(out: &mut String, name: &str, text: &str) {
    out.push('<');
    out.push_str(name);
    out.push('>');
    escape_into(out, text, false);
    out.push_str("</");
    out.push_str(name);
    out.push('>');
}

/// `<name attr="value"/>` with every value escaped.
fn empty_elem(name: &str, attrs: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(
        32 + attrs
            .iter()
            .map(|(k, v)| k.len() + v.len() + 4)
            .sum::<usize>(),
    );
    out.push('<');
    out.push_str(name);
    for (k, v) in attrs {
        out.push(' ');
        out.push_str(k);
        out.push_str("=\"");
        escape_into(&mut out, v, true);
        out.push('"');
    }
    out.push_str("/>");
    out
}

pub fn get_version() -> String {
    "<get_version/>".to_owned()
}

/// The returned command contains the password in clear: send it, never log it.
pub fn authenticate(user: &str, password: &str) -> String {
    let mut out = String::with_capacity(96 + user.len() + password.len());
    out.push_str("<authenticate><credentials>");
    elem(&mut out, "username", user);
    elem(&mut out, "password", password);
    out.push_str("</credentials></authenticate>");
    out
}

/// `hosts` are joined with commas (gvmd's list syntax), so callers must pass validated IPs/CIDRs:
/// escaping cannot stop a value containing a comma from naming two hosts. Empty entries are skipped.
/// `ports` is a gvmd port_range such as `T:22,80,U:53`; `alive_test` one of the PROTOCOLS.md strings.
pub fn create_target(name: &str, hosts: &[String], ports: &str, alive_test: &str) -> String {
    let mut out = String::with_capacity(160 + name.len() + ports.len() + hosts.len() * 16);
    out.push_str("<create_target>");
    elem(&mut out, "name", name);
    out.push_str("<hosts>");
    let mut first = true;
    for host in hosts.iter().map(|h| h.trim()).filter(|h| !h.is_empty()) {
        if !first {
            out.push(',');
        }
        first = false;
        escape_into(&mut out, host, false);
    }
    out.push_str("</hosts>");
    elem(&mut out, "port_range", ports);
    elem(&mut out, "alive_tests", alive_test);
    out.push_str("</create_target>");
    out
}

pub fn create_task(name: &str, config_id: &str, target_id: &str, scanner_id: &str) -> String {
    let mut out = String::with_capacity(160 + name.len());
    out.push_str("<create_task>");
    elem(&mut out, "name", name);
    out.push_str(&empty_elem("config", &[("id", config_id)]));
    out.push_str(&empty_elem("target", &[("id", target_id)]));
    out.push_str(&empty_elem("scanner", &[("id", scanner_id)]));
    out.push_str("</create_task>");
    out
}

pub fn start_task(task_id: &str) -> String {
    empty_elem("start_task", &[("task_id", task_id)])
}

pub fn get_tasks(task_id: &str) -> String {
    empty_elem("get_tasks", &[("task_id", task_id)])
}

/// Results filter used for every report fetch (PROTOCOLS.md §2 step 7): details are off by
/// default since GMP 9, `c` enables Critical (22.7+), and `rows=-1` asks for everything.
pub(crate) const REPORT_FILTER: &str = "apply_overrides=0 min_qod=70 rows=-1 levels=chmlg";

pub fn get_reports(report_id: &str) -> String {
    empty_elem(
        "get_reports",
        &[
            ("report_id", report_id),
            ("details", "1"),
            ("ignore_pagination", "1"),
            ("filter", REPORT_FILTER),
        ],
    )
}

pub fn get_feeds() -> String {
    "<get_feeds/>".to_owned()
}

pub fn delete_task(id: &str, ultimate: bool) -> String {
    empty_elem(
        "delete_task",
        &[
            ("task_id", id),
            ("ultimate", if ultimate { "1" } else { "0" }),
        ],
    )
}

pub fn delete_target(id: &str, ultimate: bool) -> String {
    empty_elem(
        "delete_target",
        &[
            ("target_id", id),
            ("ultimate", if ultimate { "1" } else { "0" }),
        ],
    )
}

/// `<get_tasks filter="name~PREFIX rows=-1"/>`. gvmd's `~` means "contains" (not "starts with"),
/// so callers must still check `name.starts_with(prefix)`. `"` is removed from the prefix (gvmd's
/// filter syntax has no escape for it) and a prefix with whitespace is quoted.
pub fn get_tasks_by_name_filter(prefix: &str) -> String {
    let cleaned: String = prefix.chars().filter(|&c| c != '"').collect();
    let value = if cleaned.chars().any(char::is_whitespace) {
        format!("\"{cleaned}\"")
    } else {
        cleaned
    };
    empty_elem("get_tasks", &[("filter", &format!("name~{value} rows=-1"))])
}

// === Response framing ===

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

// === Small-response parsers ===

/// The `status`/`status_text`/`id` attributes of a `<cmd>_response` root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Root element name, e.g. `create_target_response`.
    pub command: String,
    pub code: u16,
    /// gvmd's `status_text` (empty if absent).
    pub text: String,
    /// The new resource's UUID on 201 responses.
    pub id: Option<String>,
}

impl Status {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.code)
    }

    /// `Err(Error::Status)` unless the code is 2xx.
    pub fn check(self) -> Result<Status, Error> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(Error::Status {
                command: self.command,
                code: self.code,
                text: self.text,
            })
        }
    }
}

/// Attribute `key` of `e`, entity-decoded. Duplicate or malformed attributes are errors.
fn attr(e: &BytesStart<'_>, key: &str, offset: u64) -> Result<Option<String>, Error> {
    for a in e.attributes() {
        let a = a.map_err(|err| Error::Xml {
            offset,
            message: err.to_string(),
        })?;
        if a.key.0 == key {
            let v = a
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|err| Error::Xml {
                    offset,
                    message: err.to_string(),
                })?;
            return Ok(Some(v.into_owned()));
        }
    }
    Ok(None)
}

/// Status of a root element, or `None` when it has no `status` attribute (e.g. a bare `<report>`).
fn read_status(e: &BytesStart<'_>, offset: u64) -> Result<Option<Status>, Error> {
    let Some(code) = attr(e, "status", offset)? else {
        return Ok(None);
    };
    let code = code.trim().parse::<u16>().map_err(|_| Error::Unexpected {
        expected: "a numeric GMP status",
        found: snippet(&code),
    })?;
    Ok(Some(Status {
        command: e.name().0.to_owned(),
        code,
        text: attr(e, "status_text", offset)?.unwrap_or_default(),
        id: attr(e, "id", offset)?.filter(|s| !s.is_empty()),
    }))
}

/// Checks a response root: non-2xx → `Error::Status` (whatever the name, so gvmd's
/// `<gmp_response status="400" .../>` surfaces as a status), then the expected element name.
fn check_root(e: &BytesStart<'_>, expected: &'static str, offset: u64) -> Result<(), Error> {
    let status = read_status(e, offset)?
        .ok_or(Error::Missing {
            element: "status attribute",
        })?
        .check()?;
    if status.command != expected {
        return Err(Error::Unexpected {
            expected,
            found: snippet(&status.command),
        });
    }
    Ok(())
}

fn push_ref(out: &mut String, r: &BytesRef<'_>, offset: u64) -> Result<(), Error> {
    match r.resolve_char_ref() {
        Ok(Some(c)) => out.push(c),
        Ok(None) => match quick_xml::escape::resolve_predefined_entity(r) {
            Some(s) => out.push_str(s),
            None => {
                return Err(Error::Xml {
                    offset,
                    message: format!("undefined entity &{};", snippet(r)),
                })
            }
        },
        Err(e) => {
            return Err(Error::Xml {
                offset,
                message: e.to_string(),
            })
        }
    }
    Ok(())
}

/// Parses the root element's status. Does not judge the code: use [`Status::check`].
pub fn parse_status(doc: impl AsRef<[u8]>) -> Result<Status, Error> {
    let doc = doc.as_ref();
    let mut reader = Reader::from_reader(doc);
    loop {
        let offset = reader.buffer_position();
        let ev = reader
            .read_event()
            .map_err(|e| map_qx(e, reader.error_position(), true))?;
        match ev {
            Event::Start(e) | Event::Empty(e) => {
                return read_status(&e, offset)?.ok_or(Error::Missing {
                    element: "status attribute",
                })
            }
            Event::Text(t) if t.trim().is_empty() => {}
            Event::Text(t) => {
                return Err(Error::Unexpected {
                    expected: "a GMP response element",
                    found: snippet(&t),
                })
            }
            Event::DocType(_) => return Err(doctype_error()),
            Event::Eof => return Err(Error::Truncated { offset }),
            _ => {}
        }
    }
}

const SMALL_MAX_DEPTH: usize = 256;

/// One step of [`walk`]: `path` runs from the root to the element (inclusive).
enum Node<'a> {
    Open {
        path: &'a [String],
        start: &'a BytesStart<'a>,
    },
    /// `text` is the element's own character data (children's text excluded), untrimmed.
    Close { path: &'a [String], text: &'a str },
}

/// Streams a complete small response document through `f`. Rejects DOCTYPEs, caps depth,
/// stops at the root's end.
fn walk(doc: &[u8], mut f: impl FnMut(Node<'_>, u64) -> Result<(), Error>) -> Result<(), Error> {
    let mut reader = Reader::from_reader(doc);
    let mut names: Vec<String> = Vec::new();
    let mut texts: Vec<String> = Vec::new();
    loop {
        let offset = reader.buffer_position();
        let ev = reader
            .read_event()
            .map_err(|e| map_qx(e, reader.error_position(), true))?;
        let (open, close) = match &ev {
            Event::Start(_) => (true, false),
            Event::Empty(_) => (true, true),
            Event::End(_) => (false, true),
            Event::Text(t) => {
                match texts.last_mut() {
                    Some(buf) => buf.push_str(t),
                    None if t.trim().is_empty() => {}
                    None => {
                        return Err(Error::Unexpected {
                            expected: "a GMP response element",
                            found: snippet(t),
                        })
                    }
                }
                (false, false)
            }
            Event::CData(t) => {
                if let Some(buf) = texts.last_mut() {
                    buf.push_str(t);
                }
                (false, false)
            }
            Event::GeneralRef(r) => {
                match texts.last_mut() {
                    Some(buf) => push_ref(buf, r, offset)?,
                    None => {
                        return Err(Error::Unexpected {
                            expected: "a GMP response element",
                            found: format!("&{};", snippet(r)),
                        })
                    }
                }
                (false, false)
            }
            Event::DocType(_) => return Err(doctype_error()),
            Event::Eof => return Err(Error::Truncated { offset }),
            _ => (false, false),
        };
        if open {
            if let Event::Start(e) | Event::Empty(e) = &ev {
                if names.len() >= SMALL_MAX_DEPTH {
                    return Err(Error::Limit {
                        what: "element depth",
                        limit: SMALL_MAX_DEPTH as u64,
                    });
                }
                names.push(e.name().0.to_owned());
                texts.push(String::new());
                f(
                    Node::Open {
                        path: &names,
                        start: e,
                    },
                    offset,
                )?;
            }
        }
        if close {
            let text = texts.pop().unwrap_or_default();
            f(
                Node::Close {
                    path: &names,
                    text: &text,
                },
                offset,
            )?;
            names.pop();
            if names.is_empty() {
                return Ok(());
            }
        }
    }
}

fn is_path(path: &[String], want: &[&str]) -> bool {
    path.len() == want.len() && path.iter().zip(want).all(|(a, b)| a == b)
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// `<get_version_response><version>22.7</version>` → `"22.7"`.
pub fn parse_version(doc: impl AsRef<[u8]>) -> Result<String, Error> {
    let mut version = None;
    walk(doc.as_ref(), |node, offset| {
        match node {
            Node::Open { path, start } if path.len() == 1 => {
                check_root(start, "get_version_response", offset)?
            }
            Node::Close { path, text } if is_path(path, &["get_version_response", "version"]) => {
                version = non_empty(text);
            }
            _ => {}
        }
        Ok(())
    })?;
    version.ok_or(Error::Missing {
        element: "get_version_response/version",
    })
}

/// The report UUID from a 2xx `start_task_response` (trimmed: gvmd may pretty-print it).
pub fn parse_start_task(doc: impl AsRef<[u8]>) -> Result<String, Error> {
    let mut report_id = None;
    walk(doc.as_ref(), |node, offset| {
        match node {
            Node::Open { path, start } if path.len() == 1 => {
                check_root(start, "start_task_response", offset)?
            }
            Node::Close { path, text } if is_path(path, &["start_task_response", "report_id"]) => {
                report_id = non_empty(text);
            }
            _ => {}
        }
        Ok(())
    })?;
    report_id.ok_or(Error::Missing {
        element: "start_task_response/report_id",
    })
}

/// `task/status` as gvmd spells it (PROTOCOLS.md §2 step 6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskStatus {
    New,
    Requested,
    /// GMP 20.08 and later.
    Queued,
    Running,
    /// gvmd 22.9/23 and later.
    Processing,
    Done,
    StopRequested,
    Stopped,
    Interrupted,
    DeleteRequested,
    /// Anything else verbatim (e.g. "Ultimate Delete Requested"); empty when gvmd sent no status.
    Other(String),
}

impl TaskStatus {
    pub fn parse(s: &str) -> TaskStatus {
        match s.trim() {
            "New" => TaskStatus::New,
            "Requested" => TaskStatus::Requested,
            "Queued" => TaskStatus::Queued,
            "Running" => TaskStatus::Running,
            "Processing" => TaskStatus::Processing,
            "Done" => TaskStatus::Done,
            "Stop Requested" => TaskStatus::StopRequested,
            "Stopped" => TaskStatus::Stopped,
            "Interrupted" => TaskStatus::Interrupted,
            "Delete Requested" => TaskStatus::DeleteRequested,
            other => TaskStatus::Other(other.to_owned()),
        }
    }

    /// The scan will make no more progress: read the report (Done) or give up (Stopped/Interrupted).
    pub fn is_finished(&self) -> bool {
        matches!(
            self,
            TaskStatus::Done | TaskStatus::Stopped | TaskStatus::Interrupted
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    pub id: String,
    pub name: String,
    pub status: TaskStatus,
    /// 0–100 while a report runs; -1 when none does (New, Done).
    pub progress: i32,
    /// `task/last_report/report/@id`: the last *finished* report.
    pub last_report_id: Option<String>,
    /// `task/current_report/report/@id`: the report being produced right now, if any.
    pub current_report_id: Option<String>,
}

/// Every `task` of a 2xx `get_tasks_response`.
pub fn parse_tasks(doc: impl AsRef<[u8]>) -> Result<Vec<TaskInfo>, Error> {
    let mut tasks = Vec::new();
    let mut cur: Option<TaskInfo> = None;
    walk(doc.as_ref(), |node, offset| {
        match node {
            Node::Open { path, start } => match path.len() {
                1 => check_root(start, "get_tasks_response", offset)?,
                2 if path[1] == "task" => {
                    let id = attr(start, "id", offset)?.ok_or(Error::Missing {
                        element: "task/@id",
                    })?;
                    cur = Some(TaskInfo {
                        id,
                        name: String::new(),
                        status: TaskStatus::Other(String::new()),
                        progress: -1,
                        last_report_id: None,
                        current_report_id: None,
                    });
                }
                4 if path[1] == "task" && path[3] == "report" => {
                    if let Some(t) = cur.as_mut() {
                        let id = attr(start, "id", offset)?.filter(|s| !s.is_empty());
                        match path[2].as_str() {
                            "last_report" => t.last_report_id = id,
                            "current_report" => t.current_report_id = id,
                            _ => {}
                        }
                    }
                }
                _ => {}
            },
            Node::Close { path, text } => match path.len() {
                2 if path[1] == "task" => tasks.extend(cur.take()),
                3 if path[1] == "task" => {
                    if let Some(t) = cur.as_mut() {
                        match path[2].as_str() {
                            "name" => t.name = text.trim().to_owned(),
                            "status" => t.status = TaskStatus::parse(text),
                            // "100.0" appears in some exports; anything unparsable means "none".
                            "progress" => {
                                t.progress = text
                                    .trim()
                                    .parse::<f64>()
                                    .map_or(-1, |p| p.clamp(-1.0, 100.0) as i32)
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            },
        }
        Ok(())
    })?;
    Ok(tasks)
}

/// The first task of a `get_tasks_response` (the one asked for with `task_id`).
pub fn parse_task(doc: impl AsRef<[u8]>) -> Result<TaskInfo, Error> {
    parse_tasks(doc)?.into_iter().next().ok_or(Error::Missing {
        element: "get_tasks_response/task",
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feed {
    /// NVT, SCAP, CERT or GVMD_DATA.
    pub kind: String,
    pub name: String,
    /// Feed timestamp, e.g. `202405101234`; empty until the feed is loaded.
    pub version: String,
    /// gvmd holds the feed lock (a `<currently_syncing>` element is present).
    pub currently_syncing: bool,
}

/// Every `feed` of a 2xx `get_feeds_response`.
pub fn parse_feeds(doc: impl AsRef<[u8]>) -> Result<Vec<Feed>, Error> {
    let mut feeds = Vec::new();
    let mut cur: Option<Feed> = None;
    walk(doc.as_ref(), |node, offset| {
        match node {
            Node::Open { path, start } => match path.len() {
                1 => check_root(start, "get_feeds_response", offset)?,
                2 if path[1] == "feed" => {
                    cur = Some(Feed {
                        kind: String::new(),
                        name: String::new(),
                        version: String::new(),
                        currently_syncing: false,
                    })
                }
                3 if path[1] == "feed" && path[2] == "currently_syncing" => {
                    if let Some(f) = cur.as_mut() {
                        f.currently_syncing = true;
                    }
                }
                _ => {}
            },
            Node::Close { path, text } => match path.len() {
                2 if path[1] == "feed" => feeds.extend(cur.take()),
                3 if path[1] == "feed" => {
                    if let Some(f) = cur.as_mut() {
                        match path[2].as_str() {
                            "type" => f.kind = text.trim().to_owned(),
                            "name" => f.name = text.trim().to_owned(),
                            "version" => f.version = text.trim().to_owned(),
                            _ => {}
                        }
                    }
                }
                _ => {}
            },
        }
        Ok(())
    })?;
    Ok(feeds)
}

// === Streaming report parser ===

/// Caps for [`ReportParser`]; the defaults fit a 200 000-result report with room to spare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportLimits {
    /// Total bytes read from the input.
    pub max_bytes: u64,
    /// Element nesting (GMP reports need about 10).
    pub max_depth: usize,
    /// One XML token: a run of character data or one tag with its attributes. This bounds the
    /// parser's buffer even for a hostile multi-megabyte description.
    pub max_token_bytes: u64,
    /// `report/results/result` elements.
    pub max_results: u64,
    pub max_cves_per_result: usize,
    /// `report/host` entries kept in the summary.
    pub max_hosts: usize,
}

impl Default for ReportLimits {
    fn default() -> Self {
        ReportLimits {
            max_bytes: 1 << 30,
            max_depth: 64,
            max_token_bytes: 16 << 20,
            max_results: 1_000_000,
            max_cves_per_result: 4096,
            max_hosts: 100_000,
        }
    }
}

/// One `report/results/result`.
///
/// Results with a negative severity (-1 false positive, -3 error) are **kept**; use
/// [`is_false_positive`](Self::is_false_positive) / [`is_error`](Self::is_error) to drop them.
/// (With `apply_overrides=0` gvmd does not produce -1, and scan errors normally live under
/// `report/errors`, which is not read.)
#[derive(Debug, Clone, PartialEq)]
pub struct VulnResult {
    pub id: Option<String>,
    /// The IP: the trimmed own text of the mixed-content `<host>` element.
    pub host: String,
    pub hostname: Option<String>,
    /// Raw, e.g. `443/tcp` or `general/tcp`.
    pub port: String,
    pub port_number: Option<u16>,
    /// `tcp`, `udp`, `sctp` or `icmp` when the port names one.
    pub protocol: Option<String>,
    pub nvt_oid: String,
    pub nvt_name: String,
    /// The result's severity; falls back to `nvt/cvss_base` if gvmd sent none.
    pub severity: f64,
    pub cvss_base: Option<f64>,
    /// `nvt/severities/severity[@type^="cvss_base_v3"]/score` (GMP 21.4+).
    pub cvss_v3: Option<f64>,
    pub cvss_v3_vector: Option<String>,
    pub qod: Option<u8>,
    pub threat: Option<String>,
    /// `nvt/refs/ref[@type="cve"]/@id` (GMP 9+) plus comma-separated `nvt/cve` (OMP 7); deduplicated.
    pub cves: Vec<String>,
}

impl VulnResult {
    pub fn is_false_positive(&self) -> bool {
        self.severity == -1.0
    }

    pub fn is_error(&self) -> bool {
        self.severity == -3.0
    }
}

/// Report-level facts, complete once [`ReportParser::next_result`] has returned `Ok(None)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportSummary {
    /// `@id` of the outermost `report` (the id asked for in `get_reports`).
    pub report_id: Option<String>,
    pub scan_run_status: Option<String>,
    /// `report/result_count/full` (or its own text in older exports).
    pub result_count: Option<u64>,
    /// `report/result_count/filtered`: results matching the filter. If it exceeds
    /// `results_returned`, gvmd cut the list (its "Max Rows Per Page" setting caps rows=-1).
    pub results_filtered: Option<u64>,
    /// Results handed out by `next_result` (not counting per-result errors).
    pub results_returned: u64,
    /// `report/host/ip`.
    pub hosts: Vec<String>,
    /// `report/gmp/version`; absent in OMP 7 exports.
    pub gmp_version: Option<String>,
    /// The closing tag of the outer document was seen.
    pub complete: bool,
}

/// Counts bytes and refuses to hand quick-xml more than the byte and token caps allow, so its
/// event buffer never grows past `max_token_bytes` (plus one read) whatever the input.
#[derive(Debug)]
struct Guard<R> {
    inner: R,
    pos: u64,
    /// Position where the current token started (end of the previous event).
    mark: u64,
    max_bytes: u64,
    max_token: u64,
    tripped: Option<(&'static str, u64)>,
    /// The inner reader reported end of input (so an unclosed construct means truncation).
    eof: bool,
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

/// Element roles the report parser cares about; everything else is `Other` and its text is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tag {
    Other,
    Response,
    Outer,
    Body,
    Results,
    Result,
    Host,
    Hostname,
    Port,
    Nvt,
    NvtName,
    NvtCvss,
    NvtCve,
    Severities,
    SevV3,
    SevV3Score,
    SevV3Value,
    Refs,
    Ref,
    Severity,
    Threat,
    Qod,
    QodValue,
    ReportHost,
    ReportHostIp,
    ScanRunStatus,
    ResultCount,
    ResultCountFull,
    ResultCountFiltered,
    Gmp,
    GmpVersion,
}

impl Tag {
    /// Leaf elements whose own text is captured into `State::text`.
    fn captures(self) -> bool {
        matches!(
            self,
            Tag::Hostname
                | Tag::Port
                | Tag::NvtName
                | Tag::NvtCvss
                | Tag::NvtCve
                | Tag::SevV3Score
                | Tag::SevV3Value
                | Tag::Severity
                | Tag::Threat
                | Tag::QodValue
                | Tag::ReportHostIp
                | Tag::ScanRunStatus
                | Tag::ResultCountFull
                | Tag::ResultCountFiltered
                | Tag::GmpVersion
        )
    }
}

/// Children of the report body (`report/report`, or a bare inner report used as root).
fn body_child(name: &str) -> Tag {
    match name {
        "results" => Tag::Results,
        "host" => Tag::ReportHost,
        "scan_run_status" => Tag::ScanRunStatus,
        "result_count" => Tag::ResultCount,
        "gmp" => Tag::Gmp,
        _ => Tag::Other,
    }
}

/// Role of `name` under `parent`. Only `report/results/result` is a result: results nested in
/// `detection`, `delta`, `overrides`, … are `Other` because their parent is.
fn classify(parent: Tag, name: &str, e: &BytesStart<'_>, offset: u64) -> Result<Tag, Error> {
    Ok(match (parent, name) {
        (Tag::Response, "report") => Tag::Outer,
        (Tag::Outer, "report") => Tag::Body,
        (Tag::Outer | Tag::Body, n) => body_child(n),
        (Tag::Results, "result") => Tag::Result,
        (Tag::Result, "host") => Tag::Host,
        (Tag::Result, "port") => Tag::Port,
        (Tag::Result, "nvt") => Tag::Nvt,
        (Tag::Result, "severity") => Tag::Severity,
        (Tag::Result, "threat") => Tag::Threat,
        (Tag::Result, "qod") => Tag::Qod,
        (Tag::Host, "hostname") => Tag::Hostname,
        (Tag::Nvt, "name") => Tag::NvtName,
        (Tag::Nvt, "cvss_base") => Tag::NvtCvss,
        (Tag::Nvt, "cve") => Tag::NvtCve,
        (Tag::Nvt, "severities") => Tag::Severities,
        (Tag::Nvt, "refs") => Tag::Refs,
        (Tag::Severities, "severity") => match attr(e, "type", offset)? {
            Some(t) if t.starts_with("cvss_base_v3") => Tag::SevV3,
            _ => Tag::Other,
        },
        (Tag::SevV3, "score") => Tag::SevV3Score,
        (Tag::SevV3, "value") => Tag::SevV3Value,
        (Tag::Refs, "ref") => Tag::Ref,
        (Tag::Qod, "value") => Tag::QodValue,
        (Tag::ReportHost, "ip") => Tag::ReportHostIp,
        (Tag::ResultCount, "full") => Tag::ResultCountFull,
        (Tag::ResultCount, "filtered") => Tag::ResultCountFiltered,
        (Tag::Gmp, "version") => Tag::GmpVersion,
        _ => Tag::Other,
    })
}

/// Fields of the result being read. A problem is remembered and reported when the result ends,
/// so one bad result never desynchronises the stream.
#[derive(Debug, Default)]
struct Pending {
    id: Option<String>,
    host: String,
    hostname: Option<String>,
    port: Option<String>,
    nvt_oid: Option<String>,
    nvt_name: Option<String>,
    severity: Option<String>,
    cvss_base: Option<f64>,
    cvss_v3: Option<f64>,
    cvss_v3_vector: Option<String>,
    qod: Option<u8>,
    threat: Option<String>,
    cves: Vec<String>,
    problem: Option<Error>,
}

impl Pending {
    fn add_cve(&mut self, raw: &str, max: usize) {
        let cve = raw.trim();
        if cve.is_empty() || cve.eq_ignore_ascii_case("NOCVE") || self.cves.iter().any(|c| c == cve)
        {
            return;
        }
        if self.cves.len() >= max {
            self.problem.get_or_insert(Error::Limit {
                what: "CVEs per result",
                limit: max as u64,
            });
            return;
        }
        self.cves.push(cve.to_owned());
    }
}

/// Splits `443/tcp`, `general/tcp`, or the pre-GMP-8 `https (443/tcp)` form.
pub(crate) fn split_port(raw: &str) -> (Option<u16>, Option<String>) {
    let inner = match (raw.rfind('('), raw.rfind(')')) {
        (Some(a), Some(b)) if a < b => &raw[a + 1..b],
        _ => raw,
    };
    let Some((num, proto)) = inner.trim().split_once('/') else {
        return (None, None);
    };
    let proto = proto.trim().to_ascii_lowercase();
    let proto = matches!(proto.as_str(), "tcp" | "udp" | "sctp" | "icmp").then_some(proto);
    (num.trim().parse::<u16>().ok(), proto)
}

#[allow(clippy::large_enum_variant)] // transient, returned by value once per result
enum Got {
    Result(VulnResult),
    /// A result that could not be built; the parser can continue.
    Bad(Error),
    End,
}

#[derive(Debug)]
struct State {
    limits: ReportLimits,
    stack: Vec<Tag>,
    text: String,
    rc_own: String,
    rc_full: Option<u64>,
    rc_filtered: Option<u64>,
    pending: Pending,
    results_seen: u64,
    summary: ReportSummary,
}

impl State {
    fn open(&mut self, e: &BytesStart<'_>, offset: u64) -> Result<(), Error> {
        let name = e.name().0;
        let tag = match self.stack.last() {
            None => {
                if let Some(status) = read_status(e, offset)? {
                    status.check()?;
                }
                match name {
                    "get_reports_response" => Tag::Response,
                    "report" => Tag::Outer,
                    other => {
                        return Err(Error::Unexpected {
                            expected: "<get_reports_response> or <report>",
                            found: format!("<{}>", snippet(other)),
                        })
                    }
                }
            }
            Some(&Tag::Other) => Tag::Other,
            Some(&parent) => classify(parent, name, e, offset)?,
        };
        if self.stack.len() >= self.limits.max_depth {
            return Err(Error::Limit {
                what: "element depth",
                limit: self.limits.max_depth as u64,
            });
        }
        self.stack.push(tag);
        match tag {
            Tag::Outer | Tag::Body if self.summary.report_id.is_none() => {
                self.summary.report_id = attr(e, "id", offset)?.filter(|s| !s.is_empty());
            }
            Tag::Result => {
                self.results_seen += 1;
                if self.results_seen > self.limits.max_results {
                    return Err(Error::Limit {
                        what: "results",
                        limit: self.limits.max_results,
                    });
                }
                self.pending = Pending {
                    id: attr(e, "id", offset)?.filter(|s| !s.is_empty()),
                    ..Pending::default()
                };
            }
            Tag::Nvt => self.pending.nvt_oid = attr(e, "oid", offset)?,
            Tag::Ref if attr(e, "type", offset)?.is_some_and(|t| t.eq_ignore_ascii_case("cve")) => {
                if let Some(id) = attr(e, "id", offset)? {
                    self.pending.add_cve(&id, self.limits.max_cves_per_result);
                }
            }
            Tag::ResultCount => {
                self.rc_own.clear();
                self.rc_full = None;
                self.rc_filtered = None;
            }
            t if t.captures() => self.text.clear(),
            _ => {}
        }
        Ok(())
    }

    /// Where character data of the current element goes, if anywhere.
    fn sink(&mut self) -> Option<&mut String> {
        match self.stack.last() {
            Some(Tag::Host) => Some(&mut self.pending.host),
            Some(Tag::ResultCount) => Some(&mut self.rc_own),
            Some(t) if t.captures() => Some(&mut self.text),
            _ => None,
        }
    }

    fn text(&mut self, t: &str) -> Result<(), Error> {
        if self.stack.is_empty() && !t.trim().is_empty() {
            return Err(Error::Unexpected {
                expected: "a GMP report element",
                found: snippet(t),
            });
        }
        if let Some(buf) = self.sink() {
            buf.push_str(t);
        }
        Ok(())
    }

    fn general_ref(&mut self, r: &BytesRef<'_>, offset: u64) -> Result<(), Error> {
        if self.stack.is_empty() {
            return Err(Error::Unexpected {
                expected: "a GMP report element",
                found: format!("&{};", snippet(r)),
            });
        }
        match self.sink() {
            Some(buf) => push_ref(buf, r, offset),
            None => Ok(()),
        }
    }

    fn close(&mut self) -> Result<Option<Got>, Error> {
        let Some(tag) = self.stack.pop() else {
            return Err(Error::Unexpected {
                expected: "a start tag",
                found: "an unmatched end tag".to_owned(),
            });
        };
        let text = self.text.trim();
        let p = &mut self.pending;
        match tag {
            Tag::Response | Tag::Outer if self.stack.is_empty() => {
                self.summary.complete = true;
                return Ok(Some(Got::End));
            }
            Tag::Result => return Ok(Some(self.finish_result())),
            Tag::Hostname => p.hostname = non_empty(text),
            Tag::Port => p.port = Some(text.to_owned()),
            Tag::NvtName => p.nvt_name = Some(text.to_owned()),
            Tag::NvtCvss => p.cvss_base = text.parse::<f64>().ok().filter(|v| v.is_finite()),
            Tag::NvtCve => {
                for cve in text.split(',') {
                    p.add_cve(cve, self.limits.max_cves_per_result);
                }
            }
            Tag::SevV3Score if p.cvss_v3.is_none() => {
                p.cvss_v3 = text.parse::<f64>().ok().filter(|v| v.is_finite());
            }
            Tag::SevV3Value if p.cvss_v3_vector.is_none() => p.cvss_v3_vector = non_empty(text),
            Tag::Severity => p.severity = non_empty(text),
            Tag::Threat => p.threat = non_empty(text),
            Tag::QodValue => p.qod = text.parse::<u8>().ok(),
            Tag::ReportHostIp => {
                if let Some(ip) = non_empty(text) {
                    if self.summary.hosts.len() >= self.limits.max_hosts {
                        return Err(Error::Limit {
                            what: "report hosts",
                            limit: self.limits.max_hosts as u64,
                        });
                    }
                    self.summary.hosts.push(ip);
                }
            }
            Tag::ScanRunStatus => self.summary.scan_run_status = non_empty(text),
            Tag::ResultCountFull => self.rc_full = text.parse().ok(),
            Tag::ResultCountFiltered => self.rc_filtered = text.parse().ok(),
            Tag::ResultCount => {
                self.summary.result_count =
                    self.rc_full.or_else(|| self.rc_own.trim().parse().ok());
                self.summary.results_filtered = self.rc_filtered;
            }
            Tag::GmpVersion => self.summary.gmp_version = non_empty(text),
            _ => {}
        }
        Ok(None)
    }

    fn finish_result(&mut self) -> Got {
        let p = std::mem::take(&mut self.pending);
        if let Some(problem) = p.problem {
            return Got::Bad(problem);
        }
        let host = p.host.trim();
        if host.is_empty() {
            return Got::Bad(Error::Missing {
                element: "result/host",
            });
        }
        let Some(nvt_oid) = p.nvt_oid.filter(|o| !o.trim().is_empty()) else {
            return Got::Bad(Error::Missing {
                element: "result/nvt/@oid",
            });
        };
        let Some(port) = p.port.filter(|s| !s.is_empty()) else {
            return Got::Bad(Error::Missing {
                element: "result/port",
            });
        };
        let severity = match (p.severity, p.cvss_base) {
            (Some(s), _) => match s.parse::<f64>() {
                Ok(v) if v.is_finite() => v,
                _ => {
                    return Got::Bad(Error::Unexpected {
                        expected: "a numeric result/severity",
                        found: snippet(&s),
                    })
                }
            },
            (None, Some(base)) => base,
            (None, None) => {
                return Got::Bad(Error::Missing {
                    element: "result/severity",
                })
            }
        };
        let (port_number, protocol) = split_port(&port);
        self.summary.results_returned += 1;
        Got::Result(VulnResult {
            id: p.id,
            host: host.to_owned(),
            hostname: p.hostname,
            port,
            port_number,
            protocol,
            nvt_oid: nvt_oid.trim().to_owned(),
            nvt_name: p.nvt_name.unwrap_or_default(),
            severity,
            cvss_base: p.cvss_base,
            cvss_v3: p.cvss_v3,
            cvss_v3_vector: p.cvss_v3_vector,
            qod: p.qod,
            threat: p.threat,
            cves: p.cves,
        })
    }
}

/// Pull parser over a GMP report (`<get_reports_response><report><report>…` or a bare `<report>`
/// export), reading `report/results/result` one at a time with memory bounded by
/// [`ReportLimits`]. It stops right after the root's closing tag, so the reader can go on to the
/// next GMP response ([`into_inner`](Self::into_inner)).
///
/// `next_result` returns `Ok(Some)` per result and `Ok(None)` at the end. An error about one
/// result (`Missing`, `Unexpected`, a CVE `Limit`) leaves the parser usable: call again for the
/// next result. Any other error is final and later calls return `Ok(None)`.
#[derive(Debug)]
pub struct ReportParser<R> {
    reader: Reader<Guard<R>>,
    buf: Vec<u8>,
    st: State,
    finished: bool,
}

impl<R: BufRead> ReportParser<R> {
    pub fn new(reader: R, limits: ReportLimits) -> Self {
        let guard = Guard {
            inner: reader,
            pos: 0,
            mark: 0,
            max_bytes: limits.max_bytes,
            max_token: limits.max_token_bytes,
            tripped: None,
            eof: false,
        };
        ReportParser {
            reader: Reader::from_reader(guard),
            buf: Vec::with_capacity(8 * 1024),
            st: State {
                limits,
                stack: Vec::with_capacity(16),
                text: String::new(),
                rc_own: String::new(),
                rc_full: None,
                rc_filtered: None,
                pending: Pending::default(),
                results_seen: 0,
                summary: ReportSummary::default(),
            },
            finished: false,
        }
    }

    pub fn next_result(&mut self) -> Result<Option<VulnResult>, Error> {
        if self.finished {
            return Ok(None);
        }
        match self.advance() {
            Ok(Got::Result(r)) => Ok(Some(r)),
            Ok(Got::Bad(e)) => Err(e),
            Ok(Got::End) => {
                self.finished = true;
                Ok(None)
            }
            Err(e) => {
                self.finished = true;
                Err(e)
            }
        }
    }

    /// Report-level facts; final once `next_result` returned `Ok(None)` with `complete == true`.
    pub fn summary(&self) -> &ReportSummary {
        &self.st.summary
    }

    /// Bytes consumed from the input so far.
    pub fn offset(&self) -> u64 {
        self.reader.get_ref().pos
    }

    pub fn into_inner(self) -> R {
        self.reader.into_inner().inner
    }

    fn fatal(&self, e: quick_xml::Error) -> Error {
        let guard = self.reader.get_ref();
        if let Some((what, limit)) = guard.tripped {
            return Error::Limit { what, limit };
        }
        // Never read again here: on a live socket that could block.
        map_qx(e, self.reader.error_position(), guard.eof)
    }

    fn advance(&mut self) -> Result<Got, Error> {
        loop {
            self.buf.clear();
            let offset = self.reader.buffer_position();
            let ev = match self.reader.read_event_into(&mut self.buf) {
                Ok(ev) => ev,
                Err(e) => return Err(self.fatal(e)),
            };
            let got = match ev {
                Event::Start(e) => {
                    self.st.open(&e, offset)?;
                    None
                }
                Event::Empty(e) => {
                    self.st.open(&e, offset)?;
                    self.st.close()?
                }
                Event::End(_) => self.st.close()?,
                Event::Text(t) => {
                    self.st.text(&t)?;
                    None
                }
                Event::CData(t) => {
                    self.st.text(&t)?;
                    None
                }
                Event::GeneralRef(r) => {
                    self.st.general_ref(&r, offset)?;
                    None
                }
                Event::DocType(_) => return Err(doctype_error()),
                Event::Eof => return Err(Error::Truncated { offset }),
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) => None,
            };
            let pos = self.reader.get_ref().pos;
            self.reader.get_mut().mark = pos;
            if let Some(got) = got {
                return Ok(got);
            }
        }
    }
}

impl<R: BufRead> Iterator for ReportParser<R> {
    type Item = Result<VulnResult, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_result().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;
    use std::time::{Duration, Instant};

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/gvm/");

    fn fixture(rel: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}{rel}")).unwrap_or_else(|e| panic!("fixture {rel}: {e}"))
    }

    const RESPONSES: &[&str] = &[
        "responses/authenticate_response-with-severity.xml",
        "responses/create_task_response-201.xml",
        "responses/get_targets_response-gvm-tools-example_target.xml",
        "responses/get_tasks_response-gvm-tools-example_task.xml",
        "responses/omp7-get_tasks_response-all.xml",
        "responses/omp7-get_version_response.xml",
        "responses/start_task_response-202.xml",
        "responses/gmp-doc-examples/authenticate_response-200.xml",
        "responses/gmp-doc-examples/authenticate_response-400.xml",
        "responses/gmp-doc-examples/create_target_response.xml",
        "responses/gmp-doc-examples/create_task_response.xml",
        "responses/gmp-doc-examples/get_reports_response-no-details-gmp22.8.xml",
        "responses/gmp-doc-examples/get_reports_response-xml.xml",
        "responses/gmp-doc-examples/get_tasks_response.xml",
        "responses/gmp-doc-examples/get_version_response.xml",
        "responses/gmp-doc-examples/start_task_response.xml",
    ];

    const REPORTS: &[&str] = &[
        "reports/gmp22.6-report_detail_v2.xml",
        "reports/gmp22.8-report.xml",
        "reports/gmp9.0-one_vuln.xml",
        "reports/omp7-report_v7.xml",
        "responses/gmp-doc-examples/get_reports_response-xml.xml",
        "responses/gmp-doc-examples/get_reports_response-no-details-gmp22.8.xml",
    ];

    /// All results of a report plus its summary; panics on any error.
    fn parse_report(bytes: &[u8]) -> (Vec<VulnResult>, ReportSummary) {
        let mut p = ReportParser::new(bytes, ReportLimits::default());
        let mut out = Vec::new();
        while let Some(r) = p.next_result().unwrap() {
            out.push(r);
        }
        (out, p.summary().clone())
    }

    // --- command builders ---

    #[test]
    fn simple_commands_are_exact() {
        assert_eq!(get_version(), "<get_version/>");
        assert_eq!(get_feeds(), "<get_feeds/>");
        assert_eq!(start_task("t-1"), r#"<start_task task_id="t-1"/>"#);
        assert_eq!(get_tasks("t-1"), r#"<get_tasks task_id="t-1"/>"#);
        assert_eq!(
            delete_task("t-1", true),
            r#"<delete_task task_id="t-1" ultimate="1"/>"#
        );
        assert_eq!(
            delete_target("x", false),
            r#"<delete_target target_id="x" ultimate="0"/>"#
        );
        assert_eq!(
            get_reports("r-1"),
            r#"<get_reports report_id="r-1" details="1" ignore_pagination="1" filter="apply_overrides=0 min_qod=70 rows=-1 levels=chmlg"/>"#
        );
    }

    #[test]
    fn authenticate_escapes_and_round_trips() {
        let user = r#"ad<min>&"o'"#;
        let pass = "p&ss<w>rd\"'\u{1}x";
        let cmd = authenticate(user, pass);
        assert_eq!(
            cmd,
            "<authenticate><credentials><username>ad&lt;min&gt;&amp;&quot;o&apos;</username>\
             <password>p&amp;ss&lt;w&gt;rd&quot;&apos;x</password></credentials></authenticate>"
        );
        // gvmd's view of it: a well-formed document giving back the exact values (minus the C0 control).
        let (mut u, mut p) = (None, None);
        walk(cmd.as_bytes(), |node, _| {
            if let Node::Close { path, text } = node {
                match path.last().map(String::as_str) {
                    Some("username") => u = Some(text.to_owned()),
                    Some("password") => p = Some(text.to_owned()),
                    _ => {}
                }
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(u.as_deref(), Some(user));
        assert_eq!(p.as_deref(), Some("p&ss<w>rd\"'x"));
    }

    #[test]
    fn create_target_and_task_escape_values() {
        let hosts = vec![
            "10.0.0.1".to_owned(),
            " ".to_owned(),
            "10.1.0.0/24".to_owned(),
        ];
        assert_eq!(
            create_target("stinger <a&b>", &hosts, "T:22,80,U:53", "ICMP & TCP-ACK Service Ping"),
            "<create_target><name>stinger &lt;a&amp;b&gt;</name><hosts>10.0.0.1,10.1.0.0/24</hosts>\
             <port_range>T:22,80,U:53</port_range><alive_tests>ICMP &amp; TCP-ACK Service Ping</alive_tests>\
             </create_target>"
        );
        assert_eq!(
            create_task("n\"1", "daba56c8-73ec-11df-a475-002264764cea", "t\"x", "s'y"),
            "<create_task><name>n&quot;1</name><config id=\"daba56c8-73ec-11df-a475-002264764cea\"/>\
             <target id=\"t&quot;x\"/><scanner id=\"s&apos;y\"/></create_task>"
        );
        assert_eq!(
            start_task("a\"/><x y=\""),
            r#"<start_task task_id="a&quot;/&gt;&lt;x y=&quot;"/>"#
        );
        assert_eq!(get_tasks("a\nb"), r#"<get_tasks task_id="a&#10;b"/>"#);
    }

    #[test]
    fn name_filter_quotes_and_strips() {
        assert_eq!(
            get_tasks_by_name_filter("stinger-"),
            r#"<get_tasks filter="name~stinger- rows=-1"/>"#
        );
        assert_eq!(
            get_tasks_by_name_filter("my \"scan\" <x>"),
            r#"<get_tasks filter="name~&quot;my scan &lt;x&gt;&quot; rows=-1"/>"#
        );
    }

    // --- response splitter ---

    /// Where the document ends when `bytes` arrive in one chunk; the rest must be whitespace.
    fn split_whole(bytes: &[u8]) -> usize {
        let mut s = ResponseSplitter::new(1 << 20);
        let n = s.push(bytes).unwrap().expect("document completes");
        assert!(
            bytes[n..].iter().all(u8::is_ascii_whitespace),
            "junk after root"
        );
        assert!(!s.in_progress());
        n
    }

    #[test]
    fn splitter_frames_every_fixture_whole_and_byte_by_byte() {
        for rel in RESPONSES.iter().chain(REPORTS) {
            let bytes = fixture(rel);
            let whole = split_whole(&bytes);
            assert_eq!(&bytes[whole - 1..whole], b">", "{rel}");
            let mut s = ResponseSplitter::new(1 << 20);
            let mut done_at = None;
            for (i, b) in bytes.iter().enumerate() {
                if let Some(n) = s.push(std::slice::from_ref(b)).unwrap() {
                    assert_eq!(n, 1);
                    done_at = Some(i + 1);
                    break;
                }
            }
            assert_eq!(done_at, Some(whole), "{rel}");
        }
        // The self-closing, multi-line root of the 400 answer ends exactly at "/>".
        let bytes = fixture("responses/gmp-doc-examples/authenticate_response-400.xml");
        let n = split_whole(&bytes);
        assert!(bytes[..n].ends_with(b"status_text=\"Authentication failed\"/>"));
    }

    #[test]
    fn splitter_handles_back_to_back_documents_in_one_chunk() {
        let a = fixture("responses/gmp-doc-examples/authenticate_response-400.xml");
        let b = fixture("responses/gmp-doc-examples/get_tasks_response.xml");
        let a = &a[..split_whole(&a)];
        let b = &b[..split_whole(&b)];
        let both = [
            a,
            b,
            b"<get_version_response status=\"200\" status_text=\"OK\"/>",
        ]
        .concat();
        let mut s = ResponseSplitter::new(1 << 20);
        let n1 = s.push(&both).unwrap().unwrap();
        assert_eq!(n1, a.len());
        assert_eq!(parse_status(&both[..n1]).unwrap().code, 400);
        let rest = &both[n1..];
        let n2 = s.push(rest).unwrap().unwrap();
        assert_eq!(&rest[..n2], b);
        assert_eq!(parse_tasks(&rest[..n2]).unwrap().len(), 2);
        let rest = &rest[n2..];
        assert_eq!(s.push(rest).unwrap(), Some(rest.len()));
        assert_eq!(parse_status(rest).unwrap().command, "get_version_response");
    }

    #[test]
    fn splitter_ignores_markup_lookalikes_across_chunk_boundaries() {
        let doc: &[u8] =
            b"<?xml version=\"1.0\"?><!DOCTYPE r [ <!ENTITY a \"</r>\"> ]><!-- <r/> -->\
            <r a=\"x/>\" b='>'><c d=\"/\"/><!-- </r> --><![CDATA[</r>]]]]><?pi </r> ?>text > </r>";
        for cut in 0..doc.len() {
            let mut s = ResponseSplitter::new(4096);
            let first = s.push(&doc[..cut]).unwrap();
            assert_eq!(first, None, "finished early at cut {cut}");
            assert_eq!(
                s.push(&doc[cut..]).unwrap(),
                Some(doc.len() - cut),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn splitter_enforces_caps_and_reports_truncation() {
        let doc = fixture("responses/gmp-doc-examples/get_tasks_response.xml");
        let n = split_whole(&doc);
        let mut s = ResponseSplitter::new(n);
        assert_eq!(
            s.push(&doc[..n]).unwrap(),
            Some(n),
            "exactly at the cap is fine"
        );
        let mut s = ResponseSplitter::new(n - 1);
        match s.push(&doc) {
            Err(Error::Limit {
                what: "response bytes",
                limit,
            }) => assert_eq!(limit, (n - 1) as u64),
            other => panic!("{other:?}"),
        }
        assert!(s.push(b"<x/>").is_err(), "stays failed");

        let deep = "<a>".repeat(100_000);
        let t = Instant::now();
        let mut s = ResponseSplitter::new(1 << 20);
        assert!(matches!(
            s.push(deep.as_bytes()),
            Err(Error::Limit {
                what: "response element depth",
                ..
            })
        ));
        assert!(t.elapsed() < Duration::from_secs(1));

        let mut s = ResponseSplitter::new(1 << 20);
        assert_eq!(
            s.push(b"\n  <get_tasks_response status=\"200\"><task")
                .unwrap(),
            None
        );
        assert!(s.in_progress());
        assert!(matches!(s.finish(), Err(Error::Truncated { .. })));
        assert!(ResponseSplitter::new(10).finish().is_ok());

        let mut s = ResponseSplitter::new(1 << 20);
        assert!(matches!(
            s.push(b"HTTP/1.1 400"),
            Err(Error::Unexpected { .. })
        ));
    }

    // --- small responses ---

    #[test]
    fn parse_status_on_fixtures() {
        let cases: &[(&str, &str, u16, &str, Option<&str>)] = &[
            (
                "responses/gmp-doc-examples/authenticate_response-200.xml",
                "authenticate_response",
                200,
                "OK",
                None,
            ),
            (
                "responses/gmp-doc-examples/authenticate_response-400.xml",
                "authenticate_response",
                400,
                "Authentication failed",
                None,
            ),
            (
                "responses/authenticate_response-with-severity.xml",
                "authenticate_response",
                200,
                "OK",
                None,
            ),
            (
                "responses/gmp-doc-examples/create_target_response.xml",
                "create_target_response",
                201,
                "OK, resource created",
                Some("254cd3ef-bbe1-4d58-859d-21b8d0c046c6"),
            ),
            (
                "responses/gmp-doc-examples/create_task_response.xml",
                "create_task_response",
                201,
                "OK, resource created",
                Some("254cd3ef-bbe1-4d58-859d-21b8d0c046c6"),
            ),
            (
                "responses/create_task_response-201.xml",
                "create_task_response",
                201,
                "OK, resource created",
                Some("4a8db8ee-0c42-452d-bf64-64e735a71b87"),
            ),
            (
                "responses/start_task_response-202.xml",
                "start_task_response",
                202,
                "OK, request submitted",
                None,
            ),
            (
                "responses/gmp-doc-examples/start_task_response.xml",
                "start_task_response",
                200,
                "OK",
                None,
            ),
            (
                "responses/get_targets_response-gvm-tools-example_target.xml",
                "get_targets_response",
                200,
                "OK",
                None,
            ),
            (
                "responses/get_tasks_response-gvm-tools-example_task.xml",
                "get_tasks_response",
                200,
                "OK",
                None,
            ),
            (
                "responses/omp7-get_version_response.xml",
                "get_version_response",
                200,
                "OK",
                None,
            ),
            (
                "responses/gmp-doc-examples/get_reports_response-no-details-gmp22.8.xml",
                "get_reports_response",
                200,
                "OK",
                None,
            ),
        ];
        for (rel, command, code, text, id) in cases {
            let st = parse_status(fixture(rel)).unwrap();
            assert_eq!(
                (
                    st.command.as_str(),
                    st.code,
                    st.text.as_str(),
                    st.id.as_deref()
                ),
                (*command, *code, *text, *id),
                "{rel}"
            );
            assert_eq!(st.is_success(), *code < 300);
        }
        let err = parse_status(fixture(
            "responses/gmp-doc-examples/authenticate_response-400.xml",
        ))
        .unwrap()
        .check()
        .unwrap_err();
        assert!(
            matches!(&err, Error::Status { code: 400, text, .. } if text == "Authentication failed")
        );
        assert_eq!(err.kind(), "status");
        assert!(matches!(parse_status("<x/>"), Err(Error::Missing { .. })));
        assert!(matches!(parse_status("  "), Err(Error::Truncated { .. })));
    }

    #[test]
    fn parse_version_and_start_task() {
        assert_eq!(
            parse_version(fixture(
                "responses/gmp-doc-examples/get_version_response.xml"
            ))
            .unwrap(),
            "1.0"
        );
        assert_eq!(
            parse_version(fixture("responses/omp7-get_version_response.xml")).unwrap(),
            "7.0"
        );
        assert_eq!(
            parse_version(r#"<get_version_response status="200" status_text="OK"><version>22.7</version></get_version_response>"#)
                .unwrap(),
            "22.7"
        );
        assert_eq!(
            parse_start_task(fixture("responses/start_task_response-202.xml")).unwrap(),
            "9cdadab8-d28e-4a29-a2b7-bd63380515e3"
        );
        assert_eq!(
            parse_start_task(fixture(
                "responses/gmp-doc-examples/start_task_response.xml"
            ))
            .unwrap(),
            "330ee785-c2c0-4d4c-ab96-725142c9b789"
        );
        // gvmd's answer to a command before authenticate: a status error, whatever the root name.
        let pre_auth = r#"<gmp_response status="400" status_text="Only command GET_VERSION is allowed before AUTHENTICATE"/>"#;
        match parse_start_task(pre_auth) {
            Err(Error::Status {
                command,
                code: 400,
                text,
            }) => {
                assert_eq!(command, "gmp_response");
                assert!(text.starts_with("Only command GET_VERSION"));
            }
            other => panic!("{other:?}"),
        }
        let wrong = parse_version(fixture("responses/gmp-doc-examples/get_tasks_response.xml"))
            .unwrap_err();
        assert!(matches!(
            wrong,
            Error::Unexpected {
                expected: "get_version_response",
                ..
            }
        ));
        assert!(matches!(
            parse_start_task(r#"<start_task_response status="202" status_text="OK"/>"#),
            Err(Error::Missing { .. })
        ));
        assert!(matches!(
            parse_version(r#"<get_version_response status="200"><version>22"#),
            Err(Error::Truncated { .. })
        ));
    }

    #[test]
    fn parse_tasks_on_fixtures() {
        let tasks =
            parse_tasks(fixture("responses/gmp-doc-examples/get_tasks_response.xml")).unwrap();
        assert_eq!(tasks.len(), 2);
        assert_eq!(tasks[0].id, "254cd3ef-bbe1-4d58-859d-21b8d0c046c6");
        assert_eq!(tasks[0].name, "Scan Webserver");
        assert_eq!(tasks[0].status, TaskStatus::Done);
        assert!(tasks[0].status.is_finished());
        assert_eq!(tasks[0].progress, -1);
        assert_eq!(
            tasks[0].last_report_id.as_deref(),
            Some("f0fdf522-276d-4893-9274-fb8699dc2270")
        );
        assert_eq!(tasks[1].name, "Scan Mailserver");
        assert_eq!(tasks[1].status, TaskStatus::Other(String::new()));
        assert_eq!(
            (tasks[1].progress, tasks[1].last_report_id.as_deref()),
            (-1, None)
        );

        let running = parse_task(fixture(
            "responses/get_tasks_response-gvm-tools-example_task.xml",
        ))
        .unwrap();
        assert_eq!(running.id, "c8ef0597-e2c1-4e23-869f-072fa2914bf2");
        assert_eq!(running.name, "sgdfg");
        assert_eq!(running.status, TaskStatus::Running);
        assert!(!running.status.is_finished());
        assert_eq!(running.progress, 0);
        assert_eq!(running.last_report_id, None);
        assert_eq!(
            running.current_report_id.as_deref(),
            Some("38cdd1e7-8c6f-42ec-a9a5-5b06c599b170")
        );

        let omp7 = parse_tasks(fixture("responses/omp7-get_tasks_response-all.xml")).unwrap();
        let got: Vec<_> = omp7
            .iter()
            .map(|t| {
                (
                    t.name.as_str(),
                    t.status.clone(),
                    t.progress,
                    t.last_report_id.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "shellshock_01",
                    TaskStatus::Done,
                    -1,
                    Some("46203d29-ba11-4171-81ef-83d227063c7d")
                ),
                (
                    "test",
                    TaskStatus::Done,
                    -1,
                    Some("7a537c8d-a721-410b-9929-db22f46c7099")
                ),
            ]
        );

        let doc = r#"<get_tasks_response status="200" status_text="OK"><task id="a"><name>x</name>
            <status>Stop Requested</status><progress>42</progress></task><task id="b"><status>Queued</status>
            <progress>100.0</progress></task><task id="c"><status>Processing</status></task></get_tasks_response>"#;
        let t = parse_tasks(doc).unwrap();
        assert_eq!(
            (t[0].status.clone(), t[0].progress),
            (TaskStatus::StopRequested, 42)
        );
        assert_eq!(
            (t[1].status.clone(), t[1].progress),
            (TaskStatus::Queued, 100)
        );
        assert_eq!(
            (t[2].status.clone(), t[2].progress),
            (TaskStatus::Processing, -1)
        );
        assert!(matches!(
            parse_task(r#"<get_tasks_response status="200" status_text="OK"/>"#),
            Err(Error::Missing {
                element: "get_tasks_response/task"
            })
        ));
        assert!(matches!(
            parse_task(
                r#"<get_tasks_response status="404" status_text="Failed to find task 'x'"/>"#
            ),
            Err(Error::Status { code: 404, .. })
        ));
    }

    #[test]
    fn parse_feeds_reads_versions_and_sync_lock() {
        let doc = r#"<get_feeds_response status="200" status_text="OK">
            <feed><type>NVT</type><name>Greenbone Community Feed</name><version>202405101234</version>
              <description>d</description></feed>
            <feed><type>SCAP</type><name>Greenbone SCAP Data Feed</name><version>202405100631</version>
              <currently_syncing><timestamp>Fri May 10 12:00:00 2024</timestamp></currently_syncing></feed>
            <feed><type>CERT</type><name>Greenbone CERT Data Feed</name><version>202405101004</version></feed>
            <feed><type>GVMD_DATA</type><name>Greenbone Data Objects Feed</name><version></version></feed>
            </get_feeds_response>"#;
        let feeds = parse_feeds(doc).unwrap();
        let got: Vec<_> = feeds
            .iter()
            .map(|f| (f.kind.as_str(), f.version.as_str(), f.currently_syncing))
            .collect();
        assert_eq!(
            got,
            vec![
                ("NVT", "202405101234", false),
                ("SCAP", "202405100631", true),
                ("CERT", "202405101004", false),
                ("GVMD_DATA", "", false),
            ]
        );
        assert_eq!(feeds[0].name, "Greenbone Community Feed");
    }

    // --- report parser ---

    #[test]
    fn every_report_fixture_parses_to_completion() {
        for rel in REPORTS {
            let (_, summary) = parse_report(&fixture(rel));
            assert!(summary.complete, "{rel}");
            assert_eq!(summary.scan_run_status.as_deref(), Some("Done"), "{rel}");
        }
    }

    #[test]
    fn report_gmp22_8() {
        let bytes = fixture("reports/gmp22.8-report.xml");
        let (results, summary) = parse_report(&bytes);
        // Two results carry a nested detection/result: only the four report/results/result count.
        let got: Vec<_> = results
            .iter()
            .map(|r| {
                (
                    r.id.as_deref().unwrap_or(""),
                    r.port.as_str(),
                    r.port_number,
                    r.severity,
                    r.qod,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "8bc8ba01-e51a-4dc8-bf65-8ee5962ffad6",
                    "25/tcp",
                    Some(25),
                    5.0,
                    Some(99)
                ),
                (
                    "a4372005-4a37-44db-b47e-cf83de04b1e0",
                    "8083/tcp",
                    Some(8083),
                    5.0,
                    Some(70)
                ),
                (
                    "a74c26cc-685e-448c-8d6b-889baf047ff0",
                    "25/tcp",
                    Some(25),
                    4.3,
                    Some(98)
                ),
                (
                    "2e395840-5aef-46e1-9b26-a0e66175da17",
                    "22/tcp",
                    Some(22),
                    2.6,
                    Some(80)
                ),
            ]
        );
        for r in &results {
            assert_eq!(r.host, "127.0.0.1");
            assert_eq!(r.hostname.as_deref(), Some("localhost"));
            assert_eq!(r.protocol.as_deref(), Some("tcp"));
            assert_eq!(r.cvss_base, Some(r.severity));
            assert_eq!(
                (r.cvss_v3, r.cvss_v3_vector.as_deref()),
                (None, None),
                "only cvss_base_v2 here"
            );
        }
        let r = &results[2];
        assert_eq!(r.nvt_oid, "1.3.6.1.4.1.25623.1.0.117274");
        assert_eq!(
            r.nvt_name,
            "SSL/TLS: Deprecated TLSv1.0 and TLSv1.1 Protocol Detection"
        );
        assert_eq!(r.threat.as_deref(), Some("Medium"));
        assert_eq!(
            r.cves,
            [
                "CVE-2011-3389",
                "CVE-2015-0204",
                "CVE-2023-41928",
                "CVE-2024-41270",
                "CVE-2025-3200"
            ]
        );
        assert!(
            results[0].cves.is_empty(),
            "<ref type=\"cve\" id=\"\"> is skipped"
        );
        assert_eq!(results[1].cves, ["CVE-2017-16894"]);
        assert_eq!(results[3].threat.as_deref(), Some("Low"));
        assert_eq!(
            summary,
            ReportSummary {
                report_id: Some("c4d58b60-1c7c-4671-aa54-95752aa69f25".into()),
                scan_run_status: Some("Done".into()),
                result_count: Some(99),
                results_filtered: Some(4),
                results_returned: 4,
                hosts: vec!["127.0.0.1".into()],
                gmp_version: Some("22.8".into()),
                complete: true,
            }
        );
    }

    #[test]
    fn report_streams_through_a_tiny_buffer() {
        let path = format!("{FIXTURES}reports/gmp22.8-report.xml");
        let file = std::fs::File::open(path).unwrap();
        let mut p = ReportParser::new(BufReader::with_capacity(7, file), ReportLimits::default());
        let streamed: Vec<VulnResult> = p.by_ref().collect::<Result<_, _>>().unwrap();
        let (whole, summary) = parse_report(&fixture("reports/gmp22.8-report.xml"));
        assert_eq!(streamed, whole);
        assert_eq!(p.summary(), &summary);
        assert_eq!(
            p.offset(),
            split_whole(&fixture("reports/gmp22.8-report.xml")) as u64
        );
    }

    #[test]
    fn report_gmp22_6_has_cvss3_and_many_cves() {
        let (results, summary) = parse_report(&fixture("reports/gmp22.6-report_detail_v2.xml"));
        assert_eq!(results.len(), 1);
        let r = &results[0];
        assert_eq!(
            r.id.as_deref(),
            Some("ec5f93ff-3447-4171-8485-3b3b3af2edc0")
        );
        assert_eq!(
            (r.host.as_str(), r.hostname.as_deref()),
            ("10.99.99.99", Some("server99"))
        );
        assert_eq!(
            (r.port.as_str(), r.port_number, r.protocol.as_deref()),
            ("42/tcp", Some(42), Some("tcp"))
        );
        assert_eq!(r.nvt_oid, "1.3.6.1.4.1.25623.1.0.836484");
        assert_eq!(
            r.nvt_name,
            "Microsoft Windows Multiple Vulnerabilities (KB5062557)"
        );
        assert_eq!(
            (r.severity, r.cvss_base, r.cvss_v3),
            (9.8, Some(9.8), Some(9.8))
        );
        assert_eq!(
            r.cvss_v3_vector.as_deref(),
            Some("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H")
        );
        assert_eq!((r.qod, r.threat.as_deref()), (Some(80), Some("High")));
        assert_eq!(
            r.cves.len(),
            93,
            "epss/…/cve ids are not refs and are not counted twice"
        );
        assert_eq!(r.cves.first().map(String::as_str), Some("CVE-2025-49659"));
        assert_eq!(r.cves.last().map(String::as_str), Some("CVE-2025-49757"));
        assert_eq!(
            summary.report_id.as_deref(),
            Some("88bbda4b-25db-43cf-896d-b90686833b29")
        );
        assert_eq!(summary.gmp_version.as_deref(), Some("22.6"));
        assert_eq!((summary.result_count, summary.hosts.len()), (None, 0));
    }

    #[test]
    fn report_gmp9_bare_report_with_general_port() {
        let (results, summary) = parse_report(&fixture("reports/gmp9.0-one_vuln.xml"));
        assert_eq!(results.len(), 1);
        let r = &results[0];
        assert_eq!(r.host, "10.0.101.2");
        assert_eq!(r.hostname, None, "empty <hostname> is None");
        assert_eq!(
            (r.port.as_str(), r.port_number, r.protocol.as_deref()),
            ("general/tcp", None, Some("tcp"))
        );
        assert_eq!(
            (r.severity, r.cvss_base, r.qod),
            (10.0, Some(10.0), Some(97))
        );
        assert_eq!(
            r.nvt_name,
            "Mozilla Firefox Security Update (mfsa_2023-32_2023-36) - Windows"
        );
        assert_eq!(r.cves.len(), 12);
        assert_eq!(r.cves[..2], ["CVE-2023-4573", "CVE-2023-4574"]);
        assert_eq!(r.cves[11], "CVE-2023-4584");
        // The outer export wrapper's id differs from the inner report's here; the outer one wins.
        assert_eq!(
            summary.report_id.as_deref(),
            Some("0b63ae21-1a37-474a-b436-2f6561d36990")
        );
        assert_eq!(summary.gmp_version.as_deref(), Some("9.0"));
        assert_eq!(summary.hosts, ["10.0.101.2"]);
        assert_eq!(summary.result_count, Some(0));
    }

    #[test]
    fn report_omp7_reads_comma_separated_cves() {
        let (results, summary) = parse_report(&fixture("reports/omp7-report_v7.xml"));
        // 8 <result> elements in the file, two of them nested in <detection>.
        let got: Vec<_> = results
            .iter()
            .map(|r| (r.port.as_str(), r.severity, r.cves.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("1443/tcp", 6.8, vec!["CVE-2014-0224".to_owned()]),
                ("8443/tcp", 6.4, vec!["CVE-2010-2227".to_owned()]),
                ("3390/tcp", 5.0, vec![]),
                ("443/tcp", 4.3, vec![]),
                ("1443/tcp", 4.3, vec![]),
                ("8443/tcp", 4.3, vec!["CVE-2010-4172".to_owned()]),
            ]
        );
        assert!(results
            .iter()
            .all(|r| r.host == "10.10.10.10" && r.qod.is_none() && r.hostname.is_none()));
        assert_eq!(results[0].nvt_oid, "1.3.6.1.4.1.25623.1.0.105042");
        assert_eq!(
            results[0].id.as_deref(),
            Some("e68f58e5-1451-43ca-a279-395904bbe03f")
        );
        assert_eq!(
            summary.report_id.as_deref(),
            Some("f3732b63-5257-452b-91a1-b69db4ae7261")
        );
        assert_eq!(summary.gmp_version, None);
        assert!(summary.complete);
    }

    #[test]
    fn report_doc_examples() {
        let (results, summary) = parse_report(&fixture(
            "responses/gmp-doc-examples/get_reports_response-xml.xml",
        ));
        assert_eq!(results.len(), 1, "<truncated> placeholders are ignored");
        let r = &results[0];
        assert_eq!(
            r.id.as_deref(),
            Some("634f7a2e-8ca1-43b7-b6d7-0d4841449508")
        );
        assert_eq!(
            (r.host.as_str(), r.port.as_str()),
            ("127.0.1.1", "general/tcp")
        );
        assert_eq!(
            r.severity, 5.0,
            "no <severity>: falls back to nvt/cvss_base"
        );
        assert_eq!(r.cves, ["CVE-2013-1406"]);
        assert_eq!(r.nvt_oid, "1.3.6.1.4.1.25623.1.0.74");
        assert_eq!(
            summary.report_id.as_deref(),
            Some("f0fdf522-276d-4893-9274-fb8699dc2270")
        );
        assert_eq!(summary.gmp_version.as_deref(), Some("@GMP_VERSION@"));
        assert_eq!(
            (summary.result_count, summary.results_filtered),
            (Some(10), Some(10))
        );
        assert_eq!(summary.hosts, ["127.0.1.1"]);

        let (results, summary) = parse_report(&fixture(
            "responses/gmp-doc-examples/get_reports_response-no-details-gmp22.8.xml",
        ));
        assert!(
            results.is_empty(),
            "errors/error (severity -3) is not a result"
        );
        assert_eq!(
            summary.report_id.as_deref(),
            Some("f2d54f16-5001-4bf4-9b6f-75af1c1cac18")
        );
        assert_eq!(
            (summary.result_count, summary.results_filtered),
            (Some(100), Some(5))
        );
        assert_eq!(summary.gmp_version.as_deref(), Some("22.8"));
        assert!(summary.complete);
    }

    #[test]
    fn report_stops_at_root_end_leaving_the_next_response() {
        let a = fixture("reports/gmp9.0-one_vuln.xml");
        let a = &a[..split_whole(&a)];
        let next = br#"<get_version_response status="200" status_text="OK"><version>22.7</version></get_version_response>"#;
        let stream = [a, next.as_slice()].concat();
        let mut p = ReportParser::new(stream.as_slice(), ReportLimits::default());
        assert!(p.next_result().unwrap().is_some());
        assert!(p.next_result().unwrap().is_none());
        assert_eq!(p.next_result().unwrap(), None, "stays finished");
        assert_eq!(p.into_inner(), next.as_slice());
    }

    #[test]
    fn report_status_errors_and_wrong_roots() {
        let doc = r#"<get_reports_response status="404" status_text="Failed to find report 'x'"/>"#;
        let mut p = ReportParser::new(doc.as_bytes(), ReportLimits::default());
        match p.next_result() {
            Err(Error::Status {
                command,
                code: 404,
                text,
            }) => {
                assert_eq!(command, "get_reports_response");
                assert_eq!(text, "Failed to find report 'x'");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(p.next_result().unwrap(), None);
        let mut p = ReportParser::new(
            &b"<get_tasks_response status=\"200\"/>"[..],
            ReportLimits::default(),
        );
        assert!(matches!(p.next_result(), Err(Error::Unexpected { .. })));
        let mut p = ReportParser::new(&b"<report id=\"r\"/>"[..], ReportLimits::default());
        assert_eq!(p.next_result().unwrap(), None);
        assert_eq!(p.summary().report_id.as_deref(), Some("r"));
        assert!(p.summary().complete);
    }

    const MINI: &str = r#"<report id="r1"><report id="r1"><results>
        <result id="bad"><port>80/tcp</port><nvt oid="1.2"/><severity>5</severity></result>
        <result id="fp"><host> 10.0.0.9 <asset asset_id=""/><hostname>h</hostname>
          </host><port>https (443/tcp)</port><nvt oid="1.3"><name>A &amp; B &#x41;</name><cve>CVE-1, CVE-2,NOCVE,CVE-1</cve></nvt>
          <severity>-1</severity><threat>False Positive</threat><delta><result id="nested"><host>9.9.9.9</host></result></delta>
          <overrides><override><nvt oid="9.9"><name>not me</name></nvt></override></overrides></result>
        <result id="nan"><host>10.0.0.1</host><port>1/udp</port><nvt oid="1.4"/><severity>bogus</severity></result>
        <result id="ok"><host>10.0.0.1</host><port>53/udp</port><nvt oid="1.5"/><severity>0.0</severity></result>
        </results><result_count>7<filtered>3</filtered></result_count></report></report>"#;

    #[test]
    fn report_per_result_errors_are_recoverable() {
        let mut p = ReportParser::new(MINI.as_bytes(), ReportLimits::default());
        let e = p.next_result().unwrap_err();
        assert!(
            matches!(
                e,
                Error::Missing {
                    element: "result/host"
                }
            ),
            "{e:?}"
        );
        assert_eq!(e.kind(), "missing");
        let fp = p.next_result().unwrap().unwrap();
        assert_eq!(fp.id.as_deref(), Some("fp"));
        assert_eq!(
            (fp.host.as_str(), fp.hostname.as_deref()),
            ("10.0.0.9", Some("h"))
        );
        assert_eq!(
            (fp.port_number, fp.protocol.as_deref()),
            (Some(443), Some("tcp"))
        );
        assert_eq!(fp.nvt_name, "A & B A");
        assert_eq!(fp.nvt_oid, "1.3");
        assert_eq!(fp.cves, ["CVE-1", "CVE-2"]);
        assert!(fp.is_false_positive() && !fp.is_error());
        assert!(matches!(
            p.next_result(),
            Err(Error::Unexpected {
                expected: "a numeric result/severity",
                ..
            })
        ));
        let ok = p.next_result().unwrap().unwrap();
        assert_eq!(
            (ok.id.as_deref(), ok.port_number, ok.protocol.as_deref()),
            (Some("ok"), Some(53), Some("udp"))
        );
        assert_eq!(p.next_result().unwrap(), None);
        assert_eq!(p.summary().results_returned, 2);
        // Own text counts when there is no <full> child.
        assert_eq!(
            (p.summary().result_count, p.summary().results_filtered),
            (Some(7), Some(3))
        );
    }

    #[test]
    fn split_port_forms() {
        assert_eq!(split_port("443/tcp"), (Some(443), Some("tcp".into())));
        assert_eq!(split_port("general/tcp"), (None, Some("tcp".into())));
        assert_eq!(split_port("general/icmp"), (None, Some("icmp".into())));
        assert_eq!(split_port("general/CPE-T"), (None, None));
        assert_eq!(
            split_port("https (443/tcp)"),
            (Some(443), Some("tcp".into()))
        );
        assert_eq!(split_port("package"), (None, None));
        assert_eq!(split_port("70000/udp"), (None, Some("udp".into())));
    }

    // --- hostile input ---

    const LAUGHS: &str = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<get_version_response status="200" status_text="OK"><version>&lol9;</version></get_version_response>"#;

    #[test]
    fn billion_laughs_is_rejected_not_expanded() {
        // Framing sees one small document (the internal subset's '>' do not confuse it).
        let mut s = ResponseSplitter::new(4096);
        assert_eq!(s.push(LAUGHS.as_bytes()).unwrap(), Some(LAUGHS.len()));
        assert!(matches!(
            parse_version(LAUGHS),
            Err(Error::Unexpected { .. })
        ));
        assert!(matches!(
            parse_status(LAUGHS),
            Err(Error::Unexpected { .. })
        ));
        let report = LAUGHS
            .replace("get_version_response", "report")
            .replace("version>", "scan_run_status>");
        let mut p = ReportParser::new(report.as_bytes(), ReportLimits::default());
        assert!(matches!(p.next_result(), Err(Error::Unexpected { .. })));
        assert_eq!(p.summary().scan_run_status, None);
        // Without a DOCTYPE an undefined entity is just an error.
        let doc = r#"<get_version_response status="200"><version>&lol9;</version></get_version_response>"#;
        assert!(matches!(parse_version(doc), Err(Error::Xml { .. })));
    }

    #[test]
    fn deep_nesting_hits_the_depth_limit_quickly() {
        let deep = format!("<report>{}", "<a>".repeat(100_000));
        let t = Instant::now();
        let mut p = ReportParser::new(deep.as_bytes(), ReportLimits::default());
        match p.next_result() {
            Err(Error::Limit {
                what: "element depth",
                limit: 64,
            }) => {}
            other => panic!("{other:?}"),
        }
        assert!(p.offset() < 1024, "stopped early, at byte {}", p.offset());
        let tasks = format!(
            r#"<get_tasks_response status="200">{}"#,
            "<a>".repeat(100_000)
        );
        assert!(matches!(
            parse_tasks(&tasks),
            Err(Error::Limit {
                what: "element depth",
                ..
            })
        ));
        assert!(t.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn truncated_report_yields_results_before_the_cut() {
        let bytes = fixture("reports/gmp22.8-report.xml");
        let third = std::str::from_utf8(&bytes)
            .unwrap()
            .find("a74c26cc-685e-448c-8d6b-889baf047ff0")
            .unwrap();
        for cut in [third + 2000, third - 3 /* inside the id attribute */] {
            let mut p = ReportParser::new(&bytes[..cut], ReportLimits::default());
            let ids: Vec<_> = (0..2)
                .map(|_| p.next_result().unwrap().unwrap().id.unwrap())
                .collect();
            assert_eq!(
                ids,
                [
                    "8bc8ba01-e51a-4dc8-bf65-8ee5962ffad6",
                    "a4372005-4a37-44db-b47e-cf83de04b1e0"
                ]
            );
            let err = p.next_result().unwrap_err();
            assert!(
                matches!(err, Error::Truncated { offset } if offset <= cut as u64),
                "{err:?}"
            );
            assert_eq!(err.kind(), "truncated");
            assert_eq!(p.next_result().unwrap(), None);
            assert!(!p.summary().complete);
        }
        let mut p = ReportParser::new(&b""[..], ReportLimits::default());
        assert!(matches!(
            p.next_result(),
            Err(Error::Truncated { offset: 0 })
        ));
    }

    #[test]
    fn byte_and_token_caps() {
        let bytes = fixture("reports/gmp22.8-report.xml");
        let limits = ReportLimits {
            max_bytes: 10_000,
            ..ReportLimits::default()
        };
        let mut p = ReportParser::new(bytes.as_slice(), limits);
        let err = loop {
            match p.next_result() {
                Ok(Some(_)) => {}
                Ok(None) => panic!("cap not enforced"),
                Err(e) => break e,
            }
        };
        assert!(
            matches!(
                err,
                Error::Limit {
                    what: "document bytes",
                    limit: 10_000
                }
            ),
            "{err:?}"
        );
        assert!(p.offset() <= 10_000);

        // The token cap is per token, not per document: 4 KiB tokens suffice for the 257 KB fixture.
        let limits = ReportLimits {
            max_token_bytes: 4 << 10,
            ..ReportLimits::default()
        };
        let mut p = ReportParser::new(bytes.as_slice(), limits);
        assert_eq!(p.by_ref().count(), 4);
        assert!(p.summary().complete);

        let huge = format!(
            "<report><results><result><description>{}</description></result></results></report>",
            "x".repeat(1 << 20)
        );
        let limits = ReportLimits {
            max_token_bytes: 64 << 10,
            ..ReportLimits::default()
        };
        let mut p = ReportParser::new(huge.as_bytes(), limits);
        assert!(matches!(
            p.next_result(),
            Err(Error::Limit {
                what: "token bytes",
                ..
            })
        ));
        assert!(
            p.offset() <= (64 << 10) + 100,
            "buffered only about one token: {}",
            p.offset()
        );

        let limits = ReportLimits {
            max_results: 2,
            ..ReportLimits::default()
        };
        let mut p = ReportParser::new(bytes.as_slice(), limits);
        assert!(p.next_result().unwrap().is_some());
        assert!(p.next_result().unwrap().is_some());
        assert!(matches!(
            p.next_result(),
            Err(Error::Limit {
                what: "results",
                limit: 2
            })
        ));

        let limits = ReportLimits {
            max_cves_per_result: 3,
            ..ReportLimits::default()
        };
        let mut p = ReportParser::new(bytes.as_slice(), limits);
        let mut kinds = Vec::new();
        for r in p.by_ref() {
            kinds.push(r.map(|r| r.cves.len()).map_err(|e| e.kind()));
        }
        assert_eq!(
            kinds,
            [Ok(0), Ok(1), Err("limit"), Ok(0)],
            "the over-cap result is skipped, the rest continue"
        );
    }

    #[test]
    fn read_errors_surface_as_io() {
        struct Reset;
        impl Read for Reset {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::ErrorKind::ConnectionReset.into())
            }
        }
        let bytes = fixture("reports/gmp22.8-report.xml");
        let third = std::str::from_utf8(&bytes)
            .unwrap()
            .find("a74c26cc")
            .unwrap();
        let input = BufReader::new(Read::chain(&bytes[..third], Reset));
        let mut p = ReportParser::new(input, ReportLimits::default());
        assert!(p.next_result().unwrap().is_some());
        assert!(p.next_result().unwrap().is_some());
        let err = p.next_result().unwrap_err();
        assert!(
            matches!(&err, Error::Io { offset, .. } if *offset <= third as u64),
            "{err:?}"
        );
        assert_eq!(err.kind(), "io");
    }

    #[test]
    fn error_kinds_are_stable() {
        let all = [
            Error::Xml {
                offset: 1,
                message: String::new(),
            },
            Error::Truncated { offset: 1 },
            Error::Status {
                command: String::new(),
                code: 400,
                text: String::new(),
            },
            Error::Unexpected {
                expected: "x",
                found: String::new(),
            },
            Error::Limit {
                what: "x",
                limit: 1,
            },
            Error::Missing { element: "x" },
            Error::Io {
                offset: 1,
                message: String::new(),
            },
        ];
        let kinds: Vec<_> = all.iter().map(Error::kind).collect();
        assert_eq!(
            kinds,
            [
                "xml",
                "truncated",
                "status",
                "unexpected",
                "limit",
                "missing",
                "io"
            ]
        );
        let long = "é".repeat(500);
        assert!(snippet(&long).chars().count() <= 81);
    }
}
