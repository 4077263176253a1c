//! Scan stage: nmap XML (-oX) → typed hosts/ports/services; pure, streaming, bounded.
//! Reads quick-xml events from a `BufRead` it is handed (no DOM, no other I/O, no panics).
//! Every buffer and list is capped by [`Limits`]; only XML's five predefined entities and
//! character references are decoded, so a DOCTYPE can never make the parser expand anything.
#![allow(dead_code)]

use std::borrow::Cow;
use std::io::{self, BufRead, Read};

use quick_xml::errors::SyntaxError;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

// === Public types ===

/// Caps that keep memory and work bounded on hostile input. Every cap that is hit gives
/// [`Error::Limit`]; only `progress` is trimmed instead (it is advisory, and long scans
/// with `--stats-every` legitimately write thousands of entries).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Deepest element nesting (nmap itself nests about 8 deep; NSE tables add a few).
    pub max_depth: usize,
    /// Longest attribute value the parser decodes. Attributes it skips (`servicefp`, script
    /// `output`) are only bounded by `max_text_len`.
    pub max_attr_len: usize,
    /// Longest single read unit: one text run, or one whole tag/comment/DOCTYPE including
    /// all its attributes. Enforced while reading, so the read buffer never grows past it.
    pub max_text_len: usize,
    /// Most `<host>` elements (down hosts count too).
    pub max_hosts: usize,
    /// Most `<port>` elements in one host.
    pub max_ports_per_host: usize,
    /// Most `<script>` elements in one port.
    pub max_scripts_per_port: usize,
    /// Most vulners entries in one port.
    pub max_vulns_per_port: usize,
    /// Most items in any other list: addresses, hostnames, extraports, CPEs, OS matches,
    /// and the number of `progress` entries kept (the oldest half is dropped when full).
    pub max_list_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 64,
            max_attr_len: 64 * 1024,
            max_text_len: 1024 * 1024,
            max_hosts: 1_000_000,
            max_ports_per_host: 70_000,
            max_scripts_per_port: 64,
            max_vulns_per_port: 10_000,
            max_list_len: 1024,
        }
    }
}

/// One nmap run (`<nmaprun>`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NmapRun {
    /// `nmaprun/@version`, e.g. "7.95".
    pub scanner_version: Option<String>,
    pub args: Option<String>,
    /// Unix seconds; `None` when missing or not a number.
    pub start: Option<i64>,
    /// Hosts in document order; only hosts whose `</host>` was read.
    pub hosts: Vec<Host>,
    /// `runstats/finished`; `None` for an interrupted scan.
    pub finished: Option<Finished>,
    /// `runstats/hosts` (up/down/total) — the only host record for a run with no `<host>`.
    pub host_counts: Option<HostCounts>,
    /// `<taskprogress>` entries (written by `--stats-every`), oldest first.
    pub progress: Vec<TaskProgress>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub time: Option<i64>,
    pub elapsed: Option<f64>,
    pub exit: ExitStatus,
    /// `@errormsg`, set by nmap when `exit="error"`.
    pub error_message: Option<String>,
    pub summary: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Success,
    Error,
    /// Attribute missing (nmap before 5.x) or unrecognised.
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostCounts {
    pub up: u64,
    pub down: u64,
    pub total: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskProgress {
    pub task: String,
    pub percent: f64,
    /// Seconds left; nmap omits it below 1 % done.
    pub remaining: Option<u64>,
    /// Estimated completion, Unix seconds; omitted below 1 % done.
    pub etc: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    pub status: HostStatus,
    pub status_reason: Option<String>,
    pub addresses: Vec<Address>,
    pub hostnames: Vec<String>,
    pub ports: Vec<Port>,
    pub extraports: Vec<ExtraPorts>,
    pub os_matches: Vec<OsMatch>,
    /// `</host>` was read. Always true in returned runs: incomplete hosts are dropped.
    pub complete: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostStatus {
    Up,
    Down,
    /// `state="unknown"`, or no `<status>` element at all.
    Unknown,
    Skipped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub addr: String,
    pub kind: AddrKind,
    /// MAC vendor from nmap's OUI table.
    pub vendor: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddrKind {
    /// Also used when `addrtype` is missing (the DTD default).
    Ipv4,
    Ipv6,
    Mac,
    Other,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Port {
    pub protocol: Protocol,
    pub port: u16,
    pub state: PortState,
    pub reason: Option<String>,
    pub service: Option<Service>,
    /// From the `vulners` NSE script, in document order (an id can repeat under several CPEs).
    pub vulns: Vec<Vuln>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
    Ip,
}

/// nmap's six port states. `OpenFiltered` ("open|filtered", e.g. UDP with no reply) is its
/// own state and never counts as `Open`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortState {
    Open,
    Closed,
    Filtered,
    Unfiltered,
    OpenFiltered,
    ClosedFiltered,
}

/// `<service>`; empty attribute values (nmap writes `product=""`) become `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Service {
    pub name: Option<String>,
    pub product: Option<String>,
    pub version: Option<String>,
    pub extrainfo: Option<String>,
    /// "table" (guessed from the port number) or "probed".
    pub method: Option<String>,
    /// `@conf`, 0–10; `None` when missing or not a number.
    pub confidence: Option<u8>,
    pub tunnel: Option<String>,
    pub ostype: Option<String>,
    pub cpes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Vuln {
    /// e.g. "CVE-2021-1234", "EDB-ID:45233", "MSF:...".
    pub id: String,
    pub cvss: Option<f64>,
    /// vulners "type": cve, exploitdb, metasploit, ...
    pub kind: Option<String>,
    pub is_exploit: bool,
    /// Key of the enclosing `<table>`: the CPE the entry was found for.
    pub cpe: Option<String>,
    /// "cvss3.1", "cvss2.0"; only newer vulners.nse writes it.
    pub cvss_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsMatch {
    pub name: String,
    pub accuracy: u8,
    /// CPEs of all its `<osclass>` children, in order.
    pub cpes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraPorts {
    pub state: String,
    pub count: u64,
}

/// Offsets are bytes from the start of the input, pointing at the start of the offending
/// markup (for `Xml`, where quick-xml located the problem).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error("malformed nmap XML at byte {offset}: {message}")]
    Xml { offset: u64, message: String },
    #[error(
        "nmap XML ends at byte {offset} before </nmaprun> ({hosts_complete} complete hosts); \
         the scan was interrupted or its output cut short"
    )]
    Truncated { offset: u64, hosts_complete: usize },
    #[error("not nmap XML: root element is <{root}>, expected <nmaprun> (run nmap with -oX)")]
    NotNmap { root: String },
    #[error("nmap XML exceeds the {what} limit of {limit} at byte {offset}")]
    Limit {
        offset: u64,
        what: &'static str,
        limit: usize,
    },
    #[error("invalid {attribute}=\"{value}\" on <{element}> at byte {offset}")]
    InvalidValue {
        offset: u64,
        element: &'static str,
        attribute: &'static str,
        value: String,
    },
    #[error("<{element}> at byte {offset} lacks required {attribute}")]
    Missing {
        offset: u64,
        element: &'static str,
        attribute: &'static str,
    },
    /// The input itself failed (e.g. reading nmap's stdout); not an XML problem.
    #[error("reading nmap XML failed at byte {offset}: {message}")]
    Io { offset: u64, message: String },
}

impl Error {
    /// Stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Xml { .. } => "xml",
            Error::Truncated { .. } => "truncated",
            Error::NotNmap { .. } => "not_nmap",
            Error::Limit { .. } => "limit",
            Error::InvalidValue { .. } => "invalid_value",
            Error::Missing { .. } => "missing_value",
            Error::Io { .. } => "io",
        }
    }
}

/// Parses a complete nmap XML document. Any error, including a missing `</nmaprun>`, fails.
pub fn parse<R: BufRead>(input: R, limits: &Limits) -> Result<NmapRun, Error> {
    match parse_partial(input, limits) {
        (run, None) => Ok(run),
        (_, Some(err)) => Err(err),
    }
}

/// Lenient variant for interrupted scans: returns what was parsed plus the error; hosts are
/// kept only if their `</host>` was seen (complete == true).
pub fn parse_partial<R: BufRead>(input: R, limits: &Limits) -> (NmapRun, Option<Error>) {
    Parser::new(limits).run(input)
}

// === impl Parser ===

/// Where we are in the tree; one entry per open element. `Skip` marks subtrees we ignore
/// (their children are pushed as `Skip` too, so depth stays exact without decoding them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Root,
    RunStats,
    Host,
    Hostnames,
    Ports,
    Port,
    Service,
    ServiceCpe,
    Script { vulners: bool },
    VTable,
    VElem(VField),
    Os,
    OsMatch,
    OsClass,
    OsCpe,
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VField {
    Id,
    Cvss,
    Kind,
    IsExploit,
    CvssType,
}

/// A port until its `</port>`: `state` comes from a child element.
struct PendingPort {
    protocol: Protocol,
    port: u16,
    state: Option<PortState>,
    reason: Option<String>,
    service: Option<Service>,
    vulns: Vec<Vuln>,
    scripts: usize,
    at: u64,
}

/// A vulners `<table>`: either a CPE group (has `key`) or one entry (has `elem`s).
#[derive(Default)]
struct VTable {
    key: Option<String>,
    id: Option<String>,
    cvss: Option<f64>,
    kind: Option<String>,
    is_exploit: bool,
    cvss_type: Option<String>,
}

struct Parser<'l> {
    lim: &'l Limits,
    out: NmapRun,
    stack: Vec<Ctx>,
    root_closed: bool,
    host: Option<Host>,
    port: Option<PendingPort>,
    osmatch: Option<OsMatch>,
    vtables: Vec<VTable>,
    /// Text of the element being captured (`cpe`, vulners `elem`); reused.
    text: String,
    /// Byte offset where the current event starts.
    at: u64,
}

impl<'l> Parser<'l> {
    fn new(lim: &'l Limits) -> Self {
        Self {
            lim,
            out: NmapRun::default(),
            stack: Vec::with_capacity(lim.max_depth.min(64)),
            root_closed: false,
            host: None,
            port: None,
            osmatch: None,
            vtables: Vec::new(),
            text: String::new(),
            at: 0,
        }
    }

    fn run<R: BufRead>(mut self, input: R) -> (NmapRun, Option<Error>) {
        // No trim_text: quick-xml 0.42 splits text at every `&`, and trimming each piece
        // would eat spaces around entities. Captured values are trimmed once at the end.
        // quick-xml 0.42 checks every event is UTF-8, so invalid bytes anywhere (even in an
        // attribute we skip) are `Error::Xml` at that element. It does not reject C0 control
        // characters; neither do we (nmap 4.x wrote them into <taskbegin>, see the tests).
        let mut reader = Reader::from_reader(Capped::new(input, self.lim.max_text_len));
        let mut buf = Vec::with_capacity(8 * 1024);
        let err = loop {
            buf.clear();
            reader.get_mut().start_event();
            self.at = reader.buffer_position();
            let step = match reader.read_event_into(&mut buf) {
                Ok(Event::Start(e)) => self.open(&e, false),
                Ok(Event::Empty(e)) => self.open(&e, true),
                Ok(Event::End(_)) => self.close(),
                Ok(Event::Text(t)) => self.on_text(&t),
                Ok(Event::CData(t)) => self.on_text(&t),
                Ok(Event::GeneralRef(r)) => self.on_ref(&r),
                Ok(Event::Eof) => Err(self.truncated(reader.buffer_position())),
                Ok(_) => Ok(()), // declaration, PI, comment, DOCTYPE: ignored, never expanded
                Err(e) => Err(self.reader_error(e, &reader)),
            };
            if let Err(e) = step {
                break Some(e);
            }
            if self.root_closed {
                break None; // whatever follows </nmaprun> is not ours
            }
        };
        (self.out, err)
    }

    fn reader_error<R>(&self, e: quick_xml::Error, reader: &Reader<Capped<R>>) -> Error {
        let capped = reader.get_ref();
        if capped.tripped {
            let what = if capped.first == Some(b'<') {
                "markup"
            } else {
                "text"
            };
            return self.limit(what, self.lim.max_text_len);
        }
        match e {
            quick_xml::Error::Syntax(
                SyntaxError::UnclosedPI
                | SyntaxError::UnclosedXmlDecl
                | SyntaxError::UnclosedComment
                | SyntaxError::UnclosedDoctype
                | SyntaxError::UnclosedCData
                | SyntaxError::UnclosedTag
                | SyntaxError::UnclosedSingleQuotedAttributeValue
                | SyntaxError::UnclosedDoubleQuotedAttributeValue,
            ) => self.truncated(reader.buffer_position()),
            quick_xml::Error::Io(e) => Error::Io {
                offset: reader.buffer_position(),
                message: e.to_string(),
            },
            other => Error::Xml {
                offset: reader.error_position(),
                message: other.to_string(),
            },
        }
    }

    fn truncated(&self, offset: u64) -> Error {
        Error::Truncated {
            offset,
            hosts_complete: self.out.hosts.len(),
        }
    }

    fn limit(&self, what: &'static str, limit: usize) -> Error {
        Error::Limit {
            offset: self.at,
            what,
            limit,
        }
    }

    fn invalid(&self, element: &'static str, attribute: &'static str, value: &str) -> Error {
        Error::InvalidValue {
            offset: self.at,
            element,
            attribute,
            value: clip(value),
        }
    }

    fn missing(&self, element: &'static str, attribute: &'static str) -> Error {
        Error::Missing {
            offset: self.at,
            element,
            attribute,
        }
    }

    fn xml(&self, e: impl std::fmt::Display) -> Error {
        Error::Xml {
            offset: self.at,
            message: e.to_string(),
        }
    }

    // --- elements ---

    fn open(&mut self, e: &BytesStart<'_>, empty: bool) -> Result<(), Error> {
        if self.stack.len() >= self.lim.max_depth {
            return Err(self.limit("depth", self.lim.max_depth));
        }
        let parent = match self.stack.last() {
            Some(Ctx::Skip) => return self.push_or_finish(Ctx::Skip, empty),
            Some(&c) => c,
            None => {
                let qname = e.name();
                let name = qname.as_ref();
                if name != "nmaprun" {
                    return Err(Error::NotNmap { root: clip(name) });
                }
                self.run_attrs(e)?;
                return self.push_or_finish(Ctx::Root, empty);
            }
        };
        let qname = e.name();
        let ctx = match (parent, qname.as_ref()) {
            (Ctx::Root, "host") => self.start_host()?,
            (Ctx::Root, "taskprogress") => self.task_progress(e)?,
            (Ctx::Root, "runstats") => Ctx::RunStats,
            (Ctx::RunStats, "finished") => self.finished(e)?,
            (Ctx::RunStats, "hosts") => self.host_counts(e)?,
            (Ctx::Host, "status") => self.status(e)?,
            (Ctx::Host, "address") => self.address(e)?,
            (Ctx::Host, "hostnames") => Ctx::Hostnames,
            (Ctx::Host, "ports") => Ctx::Ports,
            (Ctx::Host, "os") => Ctx::Os,
            (Ctx::Hostnames, "hostname") => self.hostname(e)?,
            (Ctx::Ports, "extraports") => self.extraports(e)?,
            (Ctx::Ports, "port") => self.start_port(e)?,
            (Ctx::Port, "state") => self.port_state(e)?,
            (Ctx::Port, "service") => self.service(e)?,
            (Ctx::Port, "script") => self.start_script(e)?,
            (Ctx::Service, "cpe") | (Ctx::OsClass, "cpe") => {
                self.text.clear();
                if parent == Ctx::Service {
                    Ctx::ServiceCpe
                } else {
                    Ctx::OsCpe
                }
            }
            (Ctx::Script { vulners: true } | Ctx::VTable, "table") => self.start_vtable(e)?,
            (Ctx::VTable, "elem") => self.start_velem(e)?,
            (Ctx::Os, "osmatch") => self.start_osmatch(e)?,
            (Ctx::OsMatch, "osclass") => Ctx::OsClass,
            _ => Ctx::Skip,
        };
        self.push_or_finish(ctx, empty)
    }

    fn push_or_finish(&mut self, ctx: Ctx, empty: bool) -> Result<(), Error> {
        if empty {
            self.finish(ctx)
        } else {
            self.stack.push(ctx);
            Ok(())
        }
    }

    fn close(&mut self) -> Result<(), Error> {
        match self.stack.pop() {
            Some(ctx) => self.finish(ctx),
            None => Ok(()), // quick-xml rejects unmatched end tags; nothing to undo here
        }
    }

    fn finish(&mut self, ctx: Ctx) -> Result<(), Error> {
        match ctx {
            Ctx::Root => self.root_closed = true,
            Ctx::Host => {
                if let Some(mut host) = self.host.take() {
                    host.complete = true;
                    self.out.hosts.push(host);
                }
            }
            Ctx::Port => self.finish_port()?,
            Ctx::ServiceCpe => {
                let cpe = self.take_text();
                let max = self.lim.max_list_len;
                if let Some(svc) = self.port.as_mut().and_then(|p| p.service.as_mut()) {
                    if let Some(cpe) = cpe {
                        if svc.cpes.len() >= max {
                            return Err(self.limit("cpes", max));
                        }
                        svc.cpes.push(cpe);
                    }
                }
            }
            Ctx::Script { .. } => self.vtables.clear(),
            Ctx::VTable => self.finish_vtable()?,
            Ctx::VElem(field) => {
                let value = self.take_text();
                if let (Some(t), Some(v)) = (self.vtables.last_mut(), value) {
                    match field {
                        VField::Id => t.id = Some(v),
                        VField::Cvss => t.cvss = v.parse().ok(),
                        VField::Kind => t.kind = Some(v),
                        VField::IsExploit => t.is_exploit = v == "true",
                        VField::CvssType => t.cvss_type = Some(v),
                    }
                }
            }
            Ctx::OsMatch => {
                if let (Some(m), Some(h)) = (self.osmatch.take(), self.host.as_mut()) {
                    if h.os_matches.len() >= self.lim.max_list_len {
                        return Err(self.limit("os matches", self.lim.max_list_len));
                    }
                    h.os_matches.push(m);
                }
            }
            Ctx::OsCpe => {
                let cpe = self.take_text();
                if let (Some(m), Some(cpe)) = (self.osmatch.as_mut(), cpe) {
                    if m.cpes.len() >= self.lim.max_list_len {
                        return Err(self.limit("cpes", self.lim.max_list_len));
                    }
                    m.cpes.push(cpe);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn run_attrs(&mut self, e: &BytesStart<'_>) -> Result<(), Error> {
        let (mut version, mut args, mut start) = (None, None, None);
        self.attrs(e, &["version", "args", "start"], |k, v| match k {
            "version" => version = Some(v.into_owned()),
            "args" => args = Some(v.into_owned()),
            _ => start = v.parse().ok(),
        })?;
        self.out.scanner_version = version;
        self.out.args = args;
        self.out.start = start;
        Ok(())
    }

    fn task_progress(&mut self, e: &BytesStart<'_>) -> Result<Ctx, Error> {
        let (mut task, mut percent, mut remaining, mut etc) = (None, None, None, None);
        self.attrs(
            e,
            &["task", "percent", "remaining", "etc"],
            |k, v| match k {
                "task" => task = Some(v.into_owned()),
                "percent" => percent = Some(v),
                "remaining" => remaining = v.parse().ok(),
                _ => etc = v.parse().ok(),
            },
        )?;
        let task = task.ok_or_else(|| self.missing("taskprogress", "task"))?;
        let percent = percent.ok_or_else(|| self.missing("taskprogress", "percent"))?;
        let percent = parse_num(&percent, |p: &f64| p.is_finite())
            .ok_or_else(|| self.invalid("taskprogress", "percent", &percent))?;
        let (progress, max) = (&mut self.out.progress, self.lim.max_list_len);
        if max == 0 {
            return Ok(Ctx::Skip);
        }
        if progress.len() >= max {
            progress.drain(..progress.len().div_ceil(2)); // keep the newest half; O(1) amortised
        }
        progress.push(TaskProgress {
            task,
            percent,
            remaining,
            etc,
        });
        Ok(Ctx::Skip)
    }

    fn finished(&mut self, e: &BytesStart<'_>) -> Result<Ctx, Error> {
        let mut f = Finished {
            time: None,
            elapsed: None,
            exit: ExitStatus::Unknown,
            error_message: None,
            summary: None,
        };
        self.attrs(
            e,
            &["time", "elapsed", "exit", "errormsg", "summary"],
            |k, v| match k {
                "time" => f.time = v.parse().ok(),
                "elapsed" => f.elapsed = parse_num(&v, |x: &f64| x.is_finite()),
                "exit" => {
                    f.exit = match &*v {
                        "success" => ExitStatus::Success,
                        "error" => ExitStatus::Error,
                        _ => ExitStatus::Unknown,
                    }
                }
                "errormsg" => f.error_message = non_empty(v),
                _ => f.summary = non_empty(v),
            },
        )?;
        self.out.finished = Some(f);
        Ok(Ctx::Skip)
    }

    fn host_counts(&mut self, e: &BytesStart<'_>) -> Result<Ctx, Error> {
        // DTD: up and down default to "0", total is required.
        let (mut up, mut down, mut total) = (None, None, None);
        self.attrs(e, &["up", "down", "total"], |k, v| match k {
            "up" => up = Some(v),
            "down" => down = Some(v),
            _ => total = Some(v),
        })?;
        let num = |attr: &'static str, v: Option<Cow<'_, str>>| match v {
            None if attr == "total" => Err(self.missing("hosts", attr)),
            None => Ok(0),
            Some(v) => v
                .parse::<u64>()
                .map_err(|_| self.invalid("hosts", attr, &v)),
        };
        let counts = HostCounts {
            up: num("up", up)?,
            down: num("down", down)?,
            total: num("total", total)?,
        };
        self.out.host_counts = Some(counts);
        Ok(Ctx::Skip)
    }

    fn start_host(&mut self) -> Result<Ctx, Error> {
        if self.out.hosts.len() >= self.lim.max_hosts {
            return Err(self.limit("hosts", self.lim.max_hosts));
        }
        self.host = Some(Host {
            status: HostStatus::Unknown,
            status_reason: None,
            addresses: Vec::new(),
            hostnames: Vec::new(),
            ports: Vec::new(),
            extraports: Vec::new(),
            os_matches: Vec::new(),
            complete: false,
        });
        Ok(Ctx::Host)
    }

    fn status(&mut self, e: &BytesStart<'_>) -> Result<Ctx, Error> {
        let (mut state, mut reason) = (None, None);
        self.attrs(e, &["state", "reason"], |k, v| match k {
            "state" => state = Some(v),
            _ => reason = non_empty(v),
        })?;
        let status = match state.as_deref() {
            Some("up") => HostStatus::Up,
            Some("down") => HostStatus::Down,
            Some("unknown") => HostStatus::Unknown,
            Some("skipped") => HostStatus::Skipped,
            Some(other) => return Err(self.invalid("status", "state", other)),
            None => return Err(self.missing("status", "state")),
        };
        if let Some(h) = self.host.as_mut() {
            h.status = status;
            h.status_reason = reason;
        }
        Ok(Ctx::Skip)
    }

    fn address(&mut self, e: &BytesStart<'_>) -> Result<Ctx, Error> {
        let (mut addr, mut kind, mut vendor) = (None, AddrKind::Ipv4, None);
        self.attrs(e, &["addr", "addrtype", "vendor"], |k, v| match k {
            "addr" => addr = Some(v.into_owned()),
            "addrtype" => {
                kind = match &*v {
                    "ipv4" => AddrKind::Ipv4,
                    "ipv6" => AddrKind::Ipv6,
                    "mac" => AddrKind::Mac,
                    _ => AddrKind::Other,
                }
            }
            _ => vendor = non_empty(v),
        })?;
        let addr = addr.ok_or_else(|| self.missing("address", "addr"))?;
        let max = self.lim.max_list_len;
        if let Some(h) = self.host.as_mut() {
            if h.addresses.len() >= max {
                return Err(self.limit("addresses", max));
            }
            h.addresses.push(Address { addr, kind, vendor });
        }
        Ok(Ctx::Skip)
    }

    fn hostname(&mut self, e: &BytesStart<'_>) -> Result<Ctx, Error> {
        let mut name = None;
        self.attrs(e, &["name"], |_, v| name = non_empty(v))?;
        let max = self.lim.max_list_len;
        if let (Some(h), Some(name)) = (self.host.as_mut(), name) {
            if h.hostnames.len() >= max {
                return Err(self.limit("hostnames", max));
            }
            h.hostnames.push(name);
        }
        Ok(Ctx::Skip)
    }

    fn extraports(&mut self, e: &BytesStart<'_>) -> Result<Ctx, Error> {
        let (mut state, mut count) = (None, None);
        self.attrs(e, &["state", "count"], |k, v| match k {
            "state" => state = Some(v.into_owned()),
            _ => count = Some(v),
        })?;
        let state = state.ok_or_else(|| self.missing("extraports", "state"))?;
        let count = count.ok_or_else(|| self.missing("extraports", "count"))?;
        let count = count
            .parse()
            .map_err(|_| self.invalid("extraports", "count", &count))?;
        let max = self.lim.max_list_len;
        if let Some(h) = self.host.as_mut() {
            if h.extraports.len() >= max {
                return Err(self.limit("extraports", max));
            }
            h.extraports.push(ExtraPorts { state, count });
        }
        Ok(Ctx::Skip)
    }

    /// Design choice: a `portid` that is not a u16 (nmap never writes one; the vulners
    /// golden fixture has the placeholder "TARGET_PORT") is `Error::InvalidValue`, not a
    /// skipped port. A port we cannot identify must not silently vanish from the exposure
    /// report; `parse_partial` still returns the hosts completed before it.
    fn start_port(&mut self, e: &BytesStart<'_>) -> Result<Ctx, Error> {
        let n_ports = self.host.as_ref().map_or(0, |h| h.ports.len());
        if n_ports >= self.lim.max_ports_per_host {
            return Err(self.limit("ports", self.lim.max_ports_per_host));
        }
        let (mut proto, mut portid) = (None, None);
        self.attrs(e, &["protocol", "portid"], |k, v| match k {
            "protocol" => proto = Some(v),
            _ => portid = Some(v),
        })?;
        let protocol = match proto.as_deref() {
            Some("tcp") => Protocol::Tcp,
            Some("udp") => Protocol::Udp,
            Some("sctp") => Protocol::Sctp,
            Some("ip") => Protocol::Ip,
            Some(other) => return Err(self.invalid("port", "protocol", other)),
            None => return Err(self.missing("port", "protocol")),
        };
        let portid = portid.ok_or_else(|| self.missing("port", "portid"))?;
        let port = portid
            .parse()
            .map_err(|_| self.invalid("port", "portid", &portid))?;
        self.port = Some(PendingPort {
            protocol,
            port,
            state: None,
            reason: None,
            service: None,
            vulns: Vec::new(),
            scripts: 0,
            at: self.at,
        });
        Ok(Ctx::Port)
    }

    fn port_state(&mut self, e: &BytesStart<'_>) -> Result<Ctx, Error> {
        let (mut state, mut reason) = (None, None);
        self.attrs(e, &["state", "reason"], |k, v| match k {
            "state" => state = Some(v),
            _ => reason = non_empty(v),
        })?;
        let state = match state.as_deref() {
            Some("open") => PortState::Open,
            Some("closed") => PortState::Closed,
            Some("filtered") => PortState::Filtered,
            Some("unfiltered") => PortState::Unfiltered,
            Some("open|filtered") => PortState::OpenFiltered,
            Some("closed|filtered") => PortState::ClosedFiltered,
            Some(other) => return Err(self.invalid("state", "state", other)),
            None => return Err(self.missing("state", "state")),
        };
        if let Some(p) = self.port.as_mut() {
            p.state = Some(state);
            p.reason = reason;
        }
        Ok(Ctx::Skip)
    }

    fn service(&mut self, e: &BytesStart<'_>) -> Result<Ctx, Error> {
        let mut s = Service::default();
        let wanted = [
            "name",
            "product",
            "version",
            "extrainfo",
            "method",
            "conf",
            "tunnel",
            "ostype",
        ];
        self.attrs(e, &wanted, |k, v| match k {
            "name" => s.name = non_empty(v),
            "product" => s.product = non_empty(v),
            "version" => s.version = non_empty(v),
            "extrainfo" => s.extrainfo = non_empty(v),
            "method" => s.method = non_empty(v),
            "conf" => s.confidence = v.parse().ok(),
            "tunnel" => s.tunnel = non_empty(v),
            _ => s.ostype = non_empty(v),
        })?;
        if let Some(p) = self.port.as_mut() {
            p.service = Some(s);
        }
        Ok(Ctx::Service)
    }

    fn start_script(&mut self, e: &BytesStart<'_>) -> Result<Ctx, Error> {
        let max = self.lim.max_scripts_per_port;
        if let Some(p) = self.port.as_mut() {
            p.scripts += 1;
            if p.scripts > max {
                return Err(self.limit("scripts", max));
            }
        }
        // Compare the raw id without decoding the (possibly large) `output` attribute.
        let mut vulners = false;
        self.attrs(e, &["id"], |_, v| vulners = v == "vulners")?;
        self.vtables.clear();
        Ok(Ctx::Script { vulners })
    }

    fn start_vtable(&mut self, e: &BytesStart<'_>) -> Result<Ctx, Error> {
        let mut key = None;
        self.attrs(e, &["key"], |_, v| key = non_empty(v))?;
        self.vtables.push(VTable {
            key,
            ..VTable::default()
        });
        Ok(Ctx::VTable)
    }

    fn start_velem(&mut self, e: &BytesStart<'_>) -> Result<Ctx, Error> {
        let mut field = None;
        self.attrs(e, &["key"], |_, v| {
            field = match &*v {
                "id" => Some(VField::Id),
                "cvss" => Some(VField::Cvss),
                "type" => Some(VField::Kind),
                "is_exploit" => Some(VField::IsExploit),
                "cvss_type" => Some(VField::CvssType),
                _ => None,
            }
        })?;
        self.text.clear();
        Ok(field.map_or(Ctx::Skip, Ctx::VElem))
    }

    fn finish_vtable(&mut self) -> Result<(), Error> {
        let Some(t) = self.vtables.pop() else {
            return Ok(());
        };
        let Some(id) = t.id else { return Ok(()) }; // a CPE group, or an entry without id
        let cpe = self.vtables.last().and_then(|g| g.key.clone());
        let max = self.lim.max_vulns_per_port;
        if let Some(p) = self.port.as_mut() {
            if p.vulns.len() >= max {
                return Err(self.limit("vulns", max));
            }
            let vuln = Vuln {
                id,
                cvss: t.cvss.filter(|c| c.is_finite()),
                kind: t.kind,
                is_exploit: t.is_exploit,
                cpe,
                cvss_type: t.cvss_type,
            };
            p.vulns.push(vuln);
        }
        Ok(())
    }

    fn finish_port(&mut self) -> Result<(), Error> {
        let Some(p) = self.port.take() else {
            return Ok(());
        };
        let Some(state) = p.state else {
            return Err(Error::Missing {
                offset: p.at,
                element: "port",
                attribute: "state",
            });
        };
        if let Some(h) = self.host.as_mut() {
            h.ports.push(Port {
                protocol: p.protocol,
                port: p.port,
                state,
                reason: p.reason,
                service: p.service,
                vulns: p.vulns,
            });
        }
        Ok(())
    }

    fn start_osmatch(&mut self, e: &BytesStart<'_>) -> Result<Ctx, Error> {
        let (mut name, mut accuracy) = (None, None);
        self.attrs(e, &["name", "accuracy"], |k, v| match k {
            "name" => name = Some(v.into_owned()),
            _ => accuracy = Some(v),
        })?;
        let name = name.ok_or_else(|| self.missing("osmatch", "name"))?;
        let acc = accuracy.ok_or_else(|| self.missing("osmatch", "accuracy"))?;
        let accuracy = parse_num(&acc, |a: &u8| *a <= 100)
            .ok_or_else(|| self.invalid("osmatch", "accuracy", &acc))?;
        self.osmatch = Some(OsMatch {
            name,
            accuracy,
            cpes: Vec::new(),
        });
        Ok(Ctx::OsMatch)
    }

    // --- text ---

    fn capturing(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Ctx::ServiceCpe | Ctx::OsCpe | Ctx::VElem(_))
        )
    }

    fn push_text(&mut self, s: &str) -> Result<(), Error> {
        if self.text.len() + s.len() > self.lim.max_text_len {
            return Err(self.limit("text", self.lim.max_text_len));
        }
        self.text.push_str(s);
        Ok(())
    }

    fn on_text(&mut self, t: &str) -> Result<(), Error> {
        if self.capturing() {
            self.push_text(t)?;
        }
        Ok(())
    }

    /// Entity and character references in captured text. Only the five predefined entities
    /// and `&#..;` are decoded; anything else (e.g. a DOCTYPE-declared entity) is an error.
    /// References in skipped content are neither decoded nor expanded.
    fn on_ref(&mut self, r: &BytesRef<'_>) -> Result<(), Error> {
        if !self.capturing() {
            return Ok(());
        }
        if r.is_char_ref() {
            match r.resolve_char_ref() {
                Ok(Some(c)) => self.push_text(c.encode_utf8(&mut [0; 4])),
                Ok(None) => Ok(()),
                Err(e) => Err(self.xml(e)),
            }
        } else {
            match resolve_predefined_entity(r) {
                Some(s) => self.push_text(s),
                None => Err(self.xml(format_args!(
                    "unknown entity &{};: custom entities are never expanded",
                    clip(r)
                ))),
            }
        }
    }

    fn take_text(&mut self) -> Option<String> {
        let t = self.text.trim();
        let v = (!t.is_empty()).then(|| t.to_owned());
        self.text.clear();
        v
    }

    // --- attributes ---

    /// Calls `f` with the decoded value of each attribute named in `wanted`; others are
    /// skipped without decoding. Duplicate-attribute checks are off (last one wins).
    fn attrs<'e>(
        &self,
        e: &'e BytesStart<'_>,
        wanted: &[&str],
        mut f: impl FnMut(&str, Cow<'e, str>),
    ) -> Result<(), Error> {
        let mut it = e.attributes();
        it.with_checks(false);
        for a in it {
            let a = a.map_err(|err| self.xml(err))?;
            let key = a.key.as_ref();
            if wanted.contains(&key) {
                f(key, self.value(&a)?);
            }
        }
        Ok(())
    }

    fn value<'a>(&self, a: &Attribute<'a>) -> Result<Cow<'a, str>, Error> {
        if a.value.len() > self.lim.max_attr_len {
            return Err(self.limit("attribute", self.lim.max_attr_len));
        }
        // Resolves only the predefined entities and character references; an unknown
        // entity is EscapeError::UnrecognizedEntity, never an expansion.
        a.normalized_value(XmlVersion::Implicit1_0)
            .map_err(|err| self.xml(err))
    }
}

fn non_empty(v: Cow<'_, str>) -> Option<String> {
    let t = v.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

fn parse_num<T: std::str::FromStr>(s: &str, ok: impl Fn(&T) -> bool) -> Option<T> {
    s.trim().parse().ok().filter(|v| ok(v))
}

/// Bounds hostile strings copied into errors.
fn clip(s: &str) -> String {
    const MAX: usize = 128;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

// === impl Capped ===

/// BufRead adapter that lets one event (tag or text run) consume at most `cap` bytes, so
/// quick-xml's event buffer cannot grow with hostile input. `start_event` resets the count.
struct Capped<R> {
    inner: R,
    cap: usize,
    used: usize,
    /// First byte of the current event: `<` means markup.
    first: Option<u8>,
    tripped: bool,
}

impl<R> Capped<R> {
    fn new(inner: R, cap: usize) -> Self {
        Self {
            inner,
            cap,
            used: 0,
            first: None,
            tripped: false,
        }
    }

    fn start_event(&mut self) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/nmap");

    fn fixture(name: &str) -> Vec<u8> {
        std::fs::read(format!("{FIXTURES}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn ok(name: &str) -> NmapRun {
        parse(&fixture(name)[..], &Limits::default()).unwrap_or_else(|e| panic!("{name}: {e}"))
    }

    fn port(h: &Host, protocol: Protocol, n: u16) -> &Port {
        h.ports
            .iter()
            .find(|p| p.protocol == protocol && p.port == n)
            .unwrap_or_else(|| panic!("no {protocol:?}/{n}"))
    }

    fn svc(p: &Port) -> &Service {
        p.service.as_ref().expect("service")
    }

    fn up(run: &NmapRun) -> usize {
        run.hosts
            .iter()
            .filter(|h| h.status == HostStatus::Up)
            .count()
    }

    /// BufRead over a slice that records how much the parser consumed.
    struct Counting<'a> {
        data: &'a [u8],
        consumed: usize,
    }

    impl Read for Counting<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = (&self.data[self.consumed..]).read(out)?;
            self.consumed += n;
            Ok(n)
        }
    }

    impl BufRead for Counting<'_> {
        fn fill_buf(&mut self) -> io::Result<&[u8]> {
            Ok(&self.data[self.consumed..])
        }
        fn consume(&mut self, amt: usize) {
            self.consumed += amt;
        }
    }

    /// Parses hostile input; returns the error, the bytes consumed and the time taken.
    fn hostile(doc: &[u8]) -> (Error, usize, Duration) {
        let mut input = Counting {
            data: doc,
            consumed: 0,
        };
        let t = Instant::now();
        let err = parse(&mut input, &Limits::default()).expect_err("hostile input must fail");
        (err, input.consumed, t.elapsed())
    }

    fn vulners_golden_patched() -> Vec<u8> {
        let raw = String::from_utf8(fixture("nmap-vulners-golden_1x-normalised.xml")).unwrap();
        raw.replace("portid=\"TARGET_PORT\"", "portid=\"8080\"")
            .into_bytes()
    }

    // --- every fixture ---

    #[test]
    fn every_fixture_parses_or_fails_with_the_expected_named_error() {
        let mut seen = 0;
        for entry in std::fs::read_dir(FIXTURES).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let res = parse(&fixture(&name)[..], &Limits::default());
            match name.as_str() {
                "scans2any-goad-mini-incomplete.xml" => {
                    assert!(
                        matches!(
                            res,
                            Err(Error::Truncated {
                                hosts_complete: 1,
                                ..
                            })
                        ),
                        "{res:?}"
                    )
                }
                "nmap-vulners-golden_1x-normalised.xml" => assert!(
                    matches!(
                        &res,
                        Err(Error::InvalidValue {
                            attribute: "portid",
                            ..
                        })
                    ),
                    "{res:?}"
                ),
                "defectdojo-issue4406-vulners.xml"
                | "defectdojo-nmap_script_vulners.xml"
                | "libnmap-1_host_ping.xml"
                | "libnmap-dionaea_scan.xml"
                | "libnmap-full_sudo6.xml"
                | "nmap-ndiff-down.xml"
                | "nmap-zenmap-nmap-output-error.xml"
                | "ruby-nmap-down_host_scan.xml"
                | "ruby-nmap-scan.xml"
                | "scans2any-ipv6-google.xml" => {
                    let run = res.unwrap_or_else(|e| panic!("{name}: {e}"));
                    assert!(run.finished.is_some(), "{name}");
                    assert!(run.hosts.iter().all(|h| h.complete), "{name}");
                }
                other => panic!("fixture {other} has no expectation here; add one"),
            }
            seen += 1;
        }
        assert_eq!(seen, 12);
    }

    #[test]
    fn defectdojo_vulners_single_port() {
        let run = ok("defectdojo-nmap_script_vulners.xml");
        assert_eq!(run.scanner_version.as_deref(), Some("7.60"));
        assert_eq!(run.start, Some(1581930445));
        assert!(run
            .args
            .as_deref()
            .unwrap()
            .contains("--script=vulners/vulners.nse"));
        assert_eq!(run.hosts.len(), 1);
        let h = &run.hosts[0];
        assert_eq!(
            (h.status, h.status_reason.as_deref()),
            (HostStatus::Up, Some("syn-ack"))
        );
        assert_eq!(
            h.addresses,
            [Address {
                addr: "192.168.0.1".into(),
                kind: AddrKind::Ipv4,
                vendor: None
            }]
        );
        assert!(h.hostnames.is_empty());
        let p = port(h, Protocol::Tcp, 5022);
        assert_eq!(
            (p.state, p.reason.as_deref()),
            (PortState::Open, Some("syn-ack"))
        );
        let s = svc(p);
        assert_eq!(s.name.as_deref(), Some("ssh"));
        assert_eq!(s.product.as_deref(), Some("OpenSSH"));
        assert_eq!(s.version.as_deref(), Some("7.4"));
        assert_eq!(s.extrainfo.as_deref(), Some("protocol 2.0"));
        assert_eq!(
            (s.method.as_deref(), s.confidence),
            (Some("probed"), Some(10))
        );
        assert_eq!(s.cpes, ["cpe:/a:openbsd:openssh:7.4"]);
        let cpe = Some("cpe:/a:openbsd:openssh:7.4".to_string());
        let v = |id: &str| Vuln {
            id: id.into(),
            cvss: Some(5.0),
            kind: Some("cve".into()),
            is_exploit: false,
            cpe: cpe.clone(),
            cvss_type: None,
        };
        assert_eq!(p.vulns, [v("CVE-2018-15919"), v("CVE-2017-15906")]);
        let f = run.finished.unwrap();
        assert_eq!(
            (f.time, f.elapsed, f.exit),
            (Some(1581930455), Some(12.18), ExitStatus::Success)
        );
        assert!(f.summary.unwrap().contains("(1 host up)"));
        assert_eq!(
            run.host_counts,
            Some(HostCounts {
                up: 1,
                down: 0,
                total: 1
            })
        );
    }

    #[test]
    fn defectdojo_issue4406_42_vulners_entries_only_on_ssh() {
        let run = ok("defectdojo-issue4406-vulners.xml");
        let h = &run.hosts[0];
        assert_eq!(h.hostnames, ["ip-10-250-195-71.eu-west-1.compute.internal"]);
        assert_eq!(
            h.extraports,
            [ExtraPorts {
                state: "closed".into(),
                count: 65510
            }]
        );
        assert_eq!(h.ports.len(), 25);
        assert!(h.ports.iter().all(|p| p.state == PortState::Open));
        let ssh = port(h, Protocol::Tcp, 22);
        assert_eq!(ssh.vulns.len(), 42);
        assert_eq!(ssh.vulns.iter().filter(|v| v.is_exploit).count(), 34);
        let first = &ssh.vulns[0];
        assert_eq!(first.id, "MSF:ILITIES/UBUNTU-CVE-2019-6111/");
        assert_eq!(
            (first.cvss, first.kind.as_deref(), first.is_exploit),
            (Some(5.8), Some("metasploit"), true)
        );
        let cves: Vec<_> = ssh
            .vulns
            .iter()
            .filter(|v| v.kind.as_deref() == Some("cve"))
            .map(|v| (v.id.as_str(), v.cvss.unwrap(), v.is_exploit))
            .collect();
        assert_eq!(cves.len(), 8);
        assert_eq!(cves[0], ("CVE-2019-6111", 5.8, false));
        assert_eq!(cves[7], ("CVE-2018-20685", 2.6, false));
        assert!(ssh
            .vulns
            .iter()
            .all(|v| v.cpe.as_deref() == Some("cpe:/a:openbsd:openssh:7.4")));
        // rpcinfo also writes nested <table>/<elem>: it must not turn into vulns
        assert!(h
            .ports
            .iter()
            .filter(|p| p.port != 22)
            .all(|p| p.vulns.is_empty()));
        let etcd = svc(port(h, Protocol::Tcp, 2379));
        assert_eq!(
            (
                etcd.tunnel.as_deref(),
                etcd.method.as_deref(),
                etcd.confidence
            ),
            (Some("ssl"), Some("table"), Some(3))
        );
        let mysql = h
            .ports
            .iter()
            .filter(|p| p.service.as_ref().and_then(|s| s.version.as_deref()) == Some("5.7.32"));
        assert_eq!(mysql.count(), 7);
        assert!(port(h, Protocol::Tcp, 30475).service.is_none());
    }

    #[test]
    fn vulners_golden_portid_placeholder_is_invalid_value() {
        let raw = fixture("nmap-vulners-golden_1x-normalised.xml");
        let err = parse(&raw[..], &Limits::default()).unwrap_err();
        let Error::InvalidValue {
            offset,
            element,
            attribute,
            value,
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!(
            (*element, *attribute, value.as_str()),
            ("port", "portid", "TARGET_PORT")
        );
        assert!(
            raw[*offset as usize..].starts_with(b"<port protocol=\"tcp\" portid=\"TARGET_PORT\"")
        );
        let (run, err) = parse_partial(&raw[..], &Limits::default());
        assert!(matches!(err, Some(Error::InvalidValue { .. })));
        assert!(
            run.hosts.is_empty(),
            "the host holding the bad port never completed"
        );
        assert_eq!(run.scanner_version.as_deref(), Some("NORMALISED"));
        assert_eq!(run.start, None, "start=\"NORMALISED\" is not a number");
    }

    #[test]
    fn vulners_golden_structure_with_cvss_type() {
        let run = parse(&vulners_golden_patched()[..], &Limits::default()).unwrap();
        let h = &run.hosts[0];
        assert_eq!(
            (h.status_reason.as_deref(), h.hostnames.as_slice()),
            (Some("user-set"), &["localhost".to_string()][..])
        );
        let p = port(h, Protocol::Tcp, 8080);
        let s = svc(p);
        assert_eq!(
            (s.product.as_deref(), s.version.as_deref()),
            (Some("nginx"), Some("1.13.4"))
        );
        assert_eq!(
            s.cpes,
            [
                "cpe:/a:igor_sysoev:nginx:1.13.4",
                "cpe:/a:f5:nginx:1.13.4",
                "cpe:/a:php:php:5.6.38"
            ]
        );
        // Only script id="vulners" counts: vulners_enterprise and http-vulners-regex are ignored.
        let got: Vec<_> = p
            .vulns
            .iter()
            .map(|v| {
                (
                    v.cpe.as_deref().unwrap(),
                    v.id.as_str(),
                    v.cvss,
                    v.kind.as_deref().unwrap(),
                    v.is_exploit,
                    v.cvss_type.as_deref().unwrap(),
                )
            })
            .collect();
        let nginx = "cpe:/a:igor_sysoev:nginx:1.13.4";
        let php = "cpe:/a:php:php:5.6.38";
        assert_eq!(
            got,
            [
                (nginx, "CVE-2018-16843", Some(7.5), "cve", false, "cvss3.1"),
                (nginx, "CVE-2019-20372", Some(4.3), "cve", false, "cvss3.1"),
                (
                    nginx,
                    "EDB-ID:45233",
                    Some(0.0),
                    "exploitdb",
                    true,
                    "cvss2.0"
                ),
                (php, "CVE-2018-16843", Some(7.5), "cve", false, "cvss3.1"),
                (php, "CVE-2019-20372", Some(4.3), "cve", false, "cvss3.1"),
                (php, "EDB-ID:45233", Some(0.0), "exploitdb", true, "cvss2.0"),
            ]
        );
        let f = run.finished.unwrap();
        assert_eq!(
            (f.time, f.elapsed, f.exit),
            (None, None, ExitStatus::Success)
        );
    }

    #[test]
    fn ping_scan_has_mac_and_no_ports() {
        let run = ok("libnmap-1_host_ping.xml");
        let h = &run.hosts[0];
        assert_eq!(
            (h.status, h.status_reason.as_deref()),
            (HostStatus::Up, Some("arp-response"))
        );
        assert_eq!(
            h.addresses,
            [
                Address {
                    addr: "172.28.1.3".into(),
                    kind: AddrKind::Ipv4,
                    vendor: None
                },
                Address {
                    addr: "02:42:AC:1C:01:03".into(),
                    kind: AddrKind::Mac,
                    vendor: None
                },
            ]
        );
        assert_eq!(h.hostnames, ["dionaea", "dionaea.honeynet_testing_net"]);
        assert!(h.ports.is_empty() && h.extraports.is_empty() && h.os_matches.is_empty());
        assert_eq!(run.finished.unwrap().elapsed, Some(0.19));
    }

    #[test]
    fn dionaea_services_os_and_hosthint_ignored() {
        let run = ok("libnmap-dionaea_scan.xml");
        assert_eq!(run.hosts.len(), 1, "<hosthint> is not a host");
        let h = &run.hosts[0];
        assert_eq!(h.addresses.len(), 2);
        assert_eq!(
            h.extraports,
            [ExtraPorts {
                state: "closed".into(),
                count: 65519
            }]
        );
        assert_eq!(h.ports.len(), 16);
        assert_eq!(
            svc(port(h, Protocol::Tcp, 21)).product.as_deref(),
            Some("Synology DiskStation NAS ftpd")
        );
        let pptp = svc(port(h, Protocol::Tcp, 1723));
        assert_eq!(
            (pptp.product.as_deref(), pptp.version.as_deref()),
            (None, Some("(Firmware: 1)")),
            "product=\"\" is None"
        );
        let mysql = svc(port(h, Protocol::Tcp, 3306));
        assert_eq!(
            (mysql.product.as_deref(), mysql.version.as_deref()),
            (Some("MySQL"), Some("5.7.16"))
        );
        assert_eq!(mysql.cpes, ["cpe:/a:mysql:mysql:5.7.16"]);
        let mc = svc(port(h, Protocol::Tcp, 11211));
        assert_eq!(mc.extrainfo.as_deref(), Some("uptime 132 seconds"));
        assert_eq!(
            h.os_matches,
            [OsMatch {
                name: "Linux 4.15 - 5.6".into(),
                accuracy: 100,
                cpes: vec![
                    "cpe:/o:linux:linux_kernel:4".into(),
                    "cpe:/o:linux:linux_kernel:5".into()
                ],
            }]
        );
        // `--script default,safe` ran vulners (category safe) against memcached only.
        let mc_vulns: Vec<_> = port(h, Protocol::Tcp, 11211)
            .vulns
            .iter()
            .map(|v| (v.id.as_str(), v.cvss, v.kind.as_deref(), v.is_exploit))
            .collect();
        assert_eq!(mc_vulns.len(), 6);
        assert_eq!(
            mc_vulns[0],
            ("CVE-2016-8705", Some(7.5), Some("cve"), false)
        );
        assert_eq!(
            mc_vulns[5],
            ("PACKETSTORM:139572", Some(0.0), Some("packetstorm"), true)
        );
        assert_eq!(h.ports.iter().map(|p| p.vulns.len()).sum::<usize>(), 6);
    }

    #[test]
    fn full_sudo6_256_hosts_4_up() {
        let run = ok("libnmap-full_sudo6.xml");
        assert_eq!(run.hosts.len(), 256);
        assert_eq!(up(&run), 4);
        assert_eq!(
            run.hosts
                .iter()
                .filter(|h| h.status == HostStatus::Down)
                .count(),
            252
        );
        assert_eq!(
            run.host_counts,
            Some(HostCounts {
                up: 4,
                down: 252,
                total: 256
            })
        );
        assert_eq!(run.hosts.iter().map(|h| h.ports.len()).sum::<usize>(), 12);
        let router = run
            .hosts
            .iter()
            .find(|h| h.addresses[0].addr == "192.168.1.1")
            .unwrap();
        assert_eq!(
            router.addresses[1],
            Address {
                addr: "6C:2E:85:19:AF:00".into(),
                kind: AddrKind::Mac,
                vendor: Some("Sagemcom".into())
            }
        );
        assert_eq!(
            svc(port(router, Protocol::Tcp, 23)).product.as_deref(),
            Some("Sagem router telnetd")
        );
        assert_eq!(router.os_matches[0].name, "Linux 2.6.13 (embedded)");
        assert_eq!(router.os_matches[0].accuracy, 100);
        let win = run
            .hosts
            .iter()
            .find(|h| h.addresses[0].addr == "192.168.1.5")
            .unwrap();
        assert_eq!(
            win.extraports,
            [ExtraPorts {
                state: "filtered".into(),
                count: 998
            }]
        );
        let http = svc(port(win, Protocol::Tcp, 2869));
        assert_eq!(
            (http.ostype.as_deref(), http.cpes.as_slice()),
            (
                Some("Windows"),
                &["cpe:/o:microsoft:windows".to_string()][..]
            )
        );
        assert_eq!(win.os_matches.len(), 5);
        assert_eq!(
            win.os_matches[3].cpes.len(),
            4,
            "CPEs of all osclass children"
        );
        let mac = run
            .hosts
            .iter()
            .find(|h| h.addresses[0].addr == "192.168.1.3")
            .unwrap();
        assert_eq!(mac.status_reason.as_deref(), Some("localhost-response"));
        assert_eq!(
            run.progress,
            [TaskProgress {
                task: "NSE".into(),
                percent: 98.78,
                remaining: Some(1),
                etc: Some(1399586590)
            }]
        );
    }

    #[test]
    fn ndiff_down_has_no_host_element() {
        let run = ok("nmap-ndiff-down.xml");
        assert!(run.hosts.is_empty());
        assert_eq!(run.scanner_version.as_deref(), Some("4.90RC2"));
        assert_eq!(
            run.host_counts,
            Some(HostCounts {
                up: 0,
                down: 1,
                total: 1
            })
        );
        let f = run.finished.unwrap();
        assert_eq!(
            (f.time, f.elapsed, f.exit, f.summary),
            (Some(1247268099), Some(2.33), ExitStatus::Unknown, None)
        );
    }

    #[test]
    fn ruby_down_host() {
        let run = ok("ruby-nmap-down_host_scan.xml");
        assert_eq!(run.hosts.len(), 1);
        let h = &run.hosts[0];
        assert_eq!(
            (h.status, h.status_reason.as_deref()),
            (HostStatus::Down, Some("no-response"))
        );
        assert_eq!(h.addresses[0].addr, "225.0.0.1");
        assert!(h.ports.is_empty());
        assert_eq!(up(&run), 0);
        assert_eq!(
            run.host_counts,
            Some(HostCounts {
                up: 0,
                down: 1,
                total: 1
            })
        );
    }

    #[test]
    fn ruby_scan_udp_open_filtered_is_not_open() {
        let run = ok("ruby-nmap-scan.xml");
        let h = &run.hosts[0];
        assert_eq!(
            h.hostnames,
            ["scanme.nmap.org", "li982-156.members.linode.com"]
        );
        assert_eq!(h.ports.len(), 20);
        assert_eq!(
            h.ports
                .iter()
                .filter(|p| p.state == PortState::Open)
                .count(),
            5
        );
        assert_eq!(
            h.ports
                .iter()
                .filter(|p| p.state == PortState::OpenFiltered)
                .count(),
            15
        );
        let dhcp = port(h, Protocol::Udp, 68);
        assert_eq!(
            (dhcp.state, dhcp.reason.as_deref()),
            (PortState::OpenFiltered, Some("no-response"))
        );
        let ntp = port(h, Protocol::Udp, 123);
        assert_eq!(ntp.state, PortState::Open);
        assert_eq!(
            (svc(ntp).product.as_deref(), svc(ntp).version.as_deref()),
            (Some("NTP"), Some("v4"))
        );
        let http = svc(port(h, Protocol::Tcp, 80));
        assert_eq!(
            (http.product.as_deref(), http.version.as_deref()),
            (Some("Apache httpd"), Some("2.4.7"))
        );
        assert_eq!(http.cpes, ["cpe:/a:apache:http_server:2.4.7"]);
        assert_eq!(
            svc(port(h, Protocol::Tcp, 31337)).tunnel.as_deref(),
            Some("ssl")
        );
        assert_eq!(
            h.extraports,
            [
                ExtraPorts {
                    state: "closed".into(),
                    count: 1909
                },
                ExtraPorts {
                    state: "filtered".into(),
                    count: 71
                }
            ]
        );
        assert_eq!(h.os_matches.len(), 10);
        assert_eq!(
            (h.os_matches[0].name.as_str(), h.os_matches[0].accuracy),
            ("Linux 3.0", 94)
        );
        assert_eq!(
            h.os_matches[5].cpes,
            ["cpe:/h:netgear:dg834g", "cpe:/o:westerndigital:wd_tv"]
        );
        assert_eq!(run.progress.len(), 20);
        assert_eq!(
            run.progress[0],
            TaskProgress {
                task: "UDP Scan".into(),
                percent: 4.56,
                remaining: Some(649),
                etc: Some(1429302883)
            }
        );
        assert_eq!(run.progress[19].task, "Service scan");
        assert_eq!(run.progress[19].percent, 30.0);
    }

    #[test]
    fn ipv6_address_kind() {
        let run = ok("scans2any-ipv6-google.xml");
        let h = &run.hosts[0];
        assert_eq!(
            h.addresses,
            [Address {
                addr: "2a00:1450:4001:828::200e".into(),
                kind: AddrKind::Ipv6,
                vendor: None
            }]
        );
        assert_eq!(h.hostnames, ["fra24s05-in-x0e.1e100.net"]);
        let ports: Vec<_> = h.ports.iter().map(|p| (p.port, p.state)).collect();
        assert_eq!(ports, [(80, PortState::Open), (443, PortState::Open)]);
        assert_eq!(
            h.extraports,
            [ExtraPorts {
                state: "filtered".into(),
                count: 998
            }]
        );
    }

    /// The bytes upstream called "invalid" are U+FFFD (valid UTF-8) plus a 0x05 control
    /// character in an ignored <taskbegin> attribute. The parser is not a validating XML
    /// processor: control characters are not rejected, so the file parses.
    #[test]
    fn zenmap_output_error_fixture_parses() {
        let raw = fixture("nmap-zenmap-nmap-output-error.xml");
        assert!(std::str::from_utf8(&raw).is_ok() && raw.contains(&0x05));
        let run = parse(&raw[..], &Limits::default()).unwrap();
        let h = &run.hosts[0];
        assert_eq!(h.addresses[0].addr, "192.168.0.100");
        assert_eq!(h.hostnames, ["flog.yuma.net"]);
        assert_eq!(h.ports.len(), 6);
        let ssh = svc(port(h, Protocol::Tcp, 22));
        assert_eq!(
            (ssh.product.as_deref(), ssh.version.as_deref()),
            (Some("OpenSSH"), Some("4.3"))
        );
        assert_eq!(
            svc(port(h, Protocol::Tcp, 139)).version.as_deref(),
            Some("3.X")
        );
        assert_eq!(run.finished.unwrap().exit, ExitStatus::Unknown);
    }

    /// Real non-UTF-8 bytes anywhere (even in an attribute we skip) are an Xml error with
    /// the offset of the element that holds them: quick-xml 0.42 validates every event.
    #[test]
    fn non_utf8_bytes_are_xml_error_with_offset() {
        let raw = fixture("nmap-zenmap-nmap-output-error.xml");
        let tag_start = 2566;
        assert!(raw[tag_start..].starts_with(b"<taskbegin task=\"RPCGrind"));
        let mut bad = Vec::new();
        let mut i = 0;
        while i < raw.len() {
            if raw[i..].starts_with(&[0xEF, 0xBF, 0xBD]) {
                bad.push(0xE9); // latin-1 'é', what Windows nmap 4.22 really wrote
                i += 3;
            } else {
                bad.push(raw[i]);
                i += 1;
            }
        }
        let err = parse(&bad[..], &Limits::default()).unwrap_err();
        let Error::Xml { offset, message } = &err else {
            panic!("{err:?}")
        };
        assert!(
            (tag_start as u64..tag_start as u64 + 80).contains(offset),
            "{offset}: {message}"
        );
        assert!(message.to_lowercase().contains("utf-8"), "{message}");
    }

    #[test]
    fn goad_truncated_keeps_complete_host() {
        let raw = fixture("scans2any-goad-mini-incomplete.xml");
        let err = parse(&raw[..], &Limits::default()).unwrap_err();
        assert_eq!(
            err,
            Error::Truncated {
                offset: raw.len() as u64,
                hosts_complete: 1
            }
        );
        let (run, err) = parse_partial(&raw[..], &Limits::default());
        assert!(matches!(
            err,
            Some(Error::Truncated {
                hosts_complete: 1,
                ..
            })
        ));
        assert_eq!(run.hosts.len(), 1, "two <hosthint>s are not hosts");
        assert!(run.finished.is_none());
        let h = &run.hosts[0];
        assert!(h.complete);
        assert_eq!(h.addresses[0].addr, "192.168.56.10");
        assert_eq!(
            h.addresses[1].vendor.as_deref(),
            Some("PCS Systemtechnik/Oracle VirtualBox virtual NIC")
        );
        assert_eq!(h.ports.len(), 15);
        let iis = svc(port(h, Protocol::Tcp, 80));
        assert_eq!(
            (iis.product.as_deref(), iis.version.as_deref()),
            (Some("Microsoft IIS httpd"), Some("10.0"))
        );
        assert_eq!(
            svc(port(h, Protocol::Tcp, 53)).cpes,
            [
                "cpe:/a:jh_software:simple_dns_plus",
                "cpe:/o:microsoft:windows"
            ]
        );
        assert_eq!(
            (h.os_matches[0].name.as_str(), h.os_matches[0].accuracy),
            ("Microsoft Windows Server 2019", 100)
        );
    }

    #[test]
    fn cut_inside_a_host_drops_that_host() {
        let raw = fixture("scans2any-goad-mini-incomplete.xml");
        let port88 = 9979;
        assert!(raw[port88..].starts_with(b"<port protocol=\"tcp\" portid=\"88\""));
        for cut in [port88, port88 + 12] {
            // between two tags, and inside a tag
            let (run, err) = parse_partial(&raw[..cut], &Limits::default());
            assert!(run.hosts.is_empty(), "cut at {cut}");
            assert!(
                matches!(
                    err,
                    Some(Error::Truncated {
                        hosts_complete: 0,
                        ..
                    })
                ),
                "cut at {cut}: {err:?}"
            );
        }
        assert_eq!(
            parse(&b""[..], &Limits::default()),
            Err(Error::Truncated {
                offset: 0,
                hosts_complete: 0
            })
        );
    }

    #[test]
    fn truncating_or_corrupting_any_fixture_never_panics() {
        for entry in std::fs::read_dir(FIXTURES).unwrap() {
            let raw = std::fs::read(entry.unwrap().path()).unwrap();
            for cut in (0..raw.len()).step_by(211) {
                let (run, _) = parse_partial(&raw[..cut], &Limits::default());
                assert!(run.hosts.iter().all(|h| h.complete));
                let mut flipped = raw.clone();
                flipped[cut] ^= 0x20 | (cut as u8 & 0x5f);
                let _ = parse_partial(&flipped[..], &Limits::default());
            }
        }
    }

    // --- hostile input ---

    const LAUGHS: &str = r#"<?xml version="1.0"?>
<!DOCTYPE nmaprun [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
"#;

    #[test]
    fn billion_laughs_in_kept_attribute_is_an_error_not_an_expansion() {
        let doc = format!("{LAUGHS}<nmaprun scanner=\"nmap\" args=\"&lol9;\"></nmaprun>");
        let (err, _, took) = hostile(doc.as_bytes());
        let Error::Xml { message, .. } = &err else {
            panic!("{err:?}")
        };
        assert!(message.contains("lol9"), "{message}");
        assert!(took < Duration::from_secs(2));
    }

    #[test]
    fn billion_laughs_in_kept_text_is_an_error() {
        let doc = format!(
            "{LAUGHS}<nmaprun><host><ports><port protocol=\"tcp\" portid=\"1\"><state state=\"open\"/>\
             <service name=\"x\"><cpe>&lol9;</cpe></service></port></ports></host></nmaprun>"
        );
        let (err, _, _) = hostile(doc.as_bytes());
        assert!(
            matches!(&err, Error::Xml { message, .. } if message.contains("never expanded")),
            "{err:?}"
        );
    }

    #[test]
    fn billion_laughs_in_skipped_content_is_left_alone() {
        let doc = format!("{LAUGHS}<nmaprun><verbose level=\"&lol9;\">&lol9;</verbose><host><status state=\"up\"/></host></nmaprun>");
        let run = parse(doc.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(run.hosts.len(), 1);
    }

    #[test]
    fn predefined_entities_and_char_refs_are_decoded() {
        let doc = "<nmaprun args=\"a &amp; b&#x41;&#10;\"><host><ports><port protocol=\"tcp\" portid=\"1\">\
                   <state state=\"open\"/><service name=\"x\"><cpe> cpe:/a:x&amp;y&#58;z </cpe></service>\
                   </port></ports></host></nmaprun>";
        let run = parse(doc.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(run.args.as_deref(), Some("a & bA\n"));
        assert_eq!(svc(&run.hosts[0].ports[0]).cpes, ["cpe:/a:x&y:z"]);
    }

    #[test]
    fn deep_nesting_hits_depth_limit_early() {
        let n = 100_000;
        let doc = format!("<nmaprun>{}{}</nmaprun>", "<a>".repeat(n), "</a>".repeat(n));
        let (err, consumed, took) = hostile(doc.as_bytes());
        assert!(
            matches!(
                err,
                Error::Limit {
                    what: "depth",
                    limit: 64,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(consumed < 1024, "stopped after {consumed} bytes");
        assert!(took < Duration::from_secs(2));
    }

    #[test]
    fn huge_skipped_attribute_is_capped_while_reading() {
        let doc = format!(
            "<nmaprun><verbose level=\"{}\"/></nmaprun>",
            "A".repeat(10 << 20)
        );
        let (err, consumed, took) = hostile(doc.as_bytes());
        assert!(
            matches!(
                err,
                Error::Limit {
                    what: "markup",
                    limit: 1_048_576,
                    offset: 9
                }
            ),
            "{err:?}"
        );
        assert!(
            consumed <= (1 << 20) + 64,
            "read {consumed} bytes into one event"
        );
        assert!(took < Duration::from_secs(5));
    }

    #[test]
    fn kept_attribute_over_max_attr_len() {
        let doc = format!("<nmaprun args=\"{}\"></nmaprun>", "A".repeat(100 << 10));
        let (err, _, _) = hostile(doc.as_bytes());
        assert_eq!(
            err,
            Error::Limit {
                offset: 0,
                what: "attribute",
                limit: 64 << 10
            }
        );
    }

    #[test]
    fn huge_text_and_unclosed_comment_are_capped() {
        let text = format!("<nmaprun>{}</nmaprun>", "A".repeat(10 << 20));
        let (err, consumed, _) = hostile(text.as_bytes());
        assert!(matches!(err, Error::Limit { what: "text", .. }), "{err:?}");
        assert!(consumed <= (1 << 20) + 64);
        let comment = format!("<nmaprun><!--{}", "A".repeat(10 << 20));
        let (err, consumed, _) = hostile(comment.as_bytes());
        assert!(
            matches!(err, Error::Limit { what: "markup", .. }),
            "{err:?}"
        );
        assert!(consumed <= (1 << 20) + 64);
    }

    #[test]
    fn other_roots_are_not_nmap() {
        let err = parse(
            &b"<?xml version=\"1.0\"?><get_reports_response status=\"200\"/>"[..],
            &Limits::default(),
        );
        assert_eq!(
            err,
            Err(Error::NotNmap {
                root: "get_reports_response".into()
            })
        );
        let long = format!("<{}/>", "x".repeat(1000));
        let Err(Error::NotNmap { root }) = parse(long.as_bytes(), &Limits::default()) else {
            panic!()
        };
        assert!(root.len() < 140, "root name is clipped");
    }

    #[test]
    fn caps_on_hosts_ports_scripts_vulns_and_progress() {
        let lim = |f: fn(&mut Limits)| {
            let mut l = Limits::default();
            f(&mut l);
            l
        };
        let sudo = fixture("libnmap-full_sudo6.xml");
        let (run, err) = parse_partial(&sudo[..], &lim(|l| l.max_hosts = 2));
        assert!(
            matches!(
                err,
                Some(Error::Limit {
                    what: "hosts",
                    limit: 2,
                    ..
                })
            ),
            "{err:?}"
        );
        assert_eq!(run.hosts.len(), 2);
        let dionaea = fixture("libnmap-dionaea_scan.xml");
        let err = parse(&dionaea[..], &lim(|l| l.max_ports_per_host = 3)).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Limit {
                    what: "ports",
                    limit: 3,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = parse(&dionaea[..], &lim(|l| l.max_scripts_per_port = 1)).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Limit {
                    what: "scripts",
                    limit: 1,
                    ..
                }
            ),
            "{err:?}"
        );
        let issue = fixture("defectdojo-issue4406-vulners.xml");
        let err = parse(&issue[..], &lim(|l| l.max_vulns_per_port = 10)).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Limit {
                    what: "vulns",
                    limit: 10,
                    ..
                }
            ),
            "{err:?}"
        );
        let ruby = fixture("ruby-nmap-scan.xml");
        let run = parse(&ruby[..], &lim(|l| l.max_list_len = 4)).unwrap_err();
        assert!(
            matches!(
                run,
                Error::Limit {
                    what: "os matches",
                    limit: 4,
                    ..
                }
            ),
            "{run:?}"
        );
        let run = parse(&ruby[..], &lim(|l| l.max_list_len = 12)).unwrap();
        assert!(run.progress.len() <= 12);
        let last = run.progress.last().unwrap();
        assert_eq!(
            (last.task.as_str(), last.percent),
            ("Service scan", 30.0),
            "newest entries kept"
        );
    }

    #[test]
    fn input_read_failure_is_io_error() {
        /// Yields its bytes, then fails like a broken pipe.
        struct Failing(&'static [u8]);
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::other("pipe broke"))
            }
        }
        impl BufRead for Failing {
            fn fill_buf(&mut self) -> io::Result<&[u8]> {
                match self.0 {
                    [] => Err(io::Error::other("pipe broke")),
                    rest => Ok(rest),
                }
            }
            fn consume(&mut self, amt: usize) {
                self.0 = &self.0[amt..];
            }
        }
        let err = parse(Failing(b"<nmaprun><host>"), &Limits::default()).unwrap_err();
        assert!(
            matches!(&err, Error::Io { offset: 15, message } if message.contains("pipe broke")),
            "{err:?}"
        );
        assert_eq!(err.kind(), "io");
    }

    fn one_port(port: &str, state: &str) -> String {
        format!("<nmaprun><host><ports><port {port}><state state=\"{state}\"/></port></ports></host></nmaprun>")
    }

    #[test]
    fn invalid_and_missing_values_are_named() {
        let cases = [
            (
                one_port("protocol=\"tcp\" portid=\"70000\"", "open"),
                "port",
                "portid",
                "70000",
            ),
            (
                one_port("protocol=\"tcp\" portid=\"-1\"", "open"),
                "port",
                "portid",
                "-1",
            ),
            (
                one_port("protocol=\"icmp\" portid=\"1\"", "open"),
                "port",
                "protocol",
                "icmp",
            ),
            (
                one_port("protocol=\"tcp\" portid=\"1\"", "bogus"),
                "state",
                "state",
                "bogus",
            ),
        ];
        for (doc, element, attribute, value) in cases {
            let err = parse(doc.as_bytes(), &Limits::default()).unwrap_err();
            let Error::InvalidValue {
                element: e,
                attribute: a,
                value: v,
                ..
            } = &err
            else {
                panic!("{err:?}")
            };
            assert_eq!((*e, *a, v.as_str()), (element, attribute, value));
        }
        let doc = "<nmaprun><host><ports><port protocol=\"tcp\" portid=\"1\"></port></ports></host></nmaprun>";
        let err = parse(doc.as_bytes(), &Limits::default()).unwrap_err();
        assert_eq!(
            err,
            Error::Missing {
                offset: 22,
                element: "port",
                attribute: "state"
            }
        );
        let doc = "<nmaprun><host><address addrtype=\"ipv4\"/></host></nmaprun>";
        assert!(matches!(
            parse(doc.as_bytes(), &Limits::default()),
            Err(Error::Missing {
                element: "address",
                ..
            })
        ));
    }

    #[test]
    fn mismatched_end_tag_is_xml_error() {
        let doc = "<nmaprun><host></ports></nmaprun>";
        let err = parse(doc.as_bytes(), &Limits::default()).unwrap_err();
        assert!(matches!(err, Error::Xml { offset: 15, .. }), "{err:?}");
        assert_eq!(err.kind(), "xml");
    }

    #[test]
    fn error_exit_progress_without_eta_and_trailing_junk() {
        let doc = "<nmaprun><taskprogress task=\"SYN Stealth Scan\" time=\"1\" percent=\"0.50\"/>\
                   <runstats><finished time=\"2\" exit=\"error\" errormsg=\"Failed to open device eth9\"/>\
                   <hosts up=\"0\" down=\"0\" total=\"0\"/></runstats></nmaprun>\n<not closed";
        let run = parse(doc.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(
            run.progress,
            [TaskProgress {
                task: "SYN Stealth Scan".into(),
                percent: 0.5,
                remaining: None,
                etc: None
            }]
        );
        let f = run.finished.unwrap();
        assert_eq!(
            (f.exit, f.error_message.as_deref()),
            (ExitStatus::Error, Some("Failed to open device eth9"))
        );
    }
}
