//! The event loop: [`Parser`] reads quick-xml events, tracks the open elements ([`Ctx`]),
//! dispatches start tags to their handlers, finishes elements at their end tags, and decodes
//! attributes and captured text within the [`Limits`].

use std::borrow::Cow;
use std::io::BufRead;

use quick_xml::errors::SyntaxError;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::{Reader, XmlVersion};

use super::reader::Capped;
use super::vulners::{VField, VTable};
use super::{Error, Host, Limits, NmapRun, OsMatch, PortState, Protocol, Service, Vuln};

/// Where we are in the tree; one entry per open element. `Skip` marks subtrees we ignore
/// (their children are pushed as `Skip` too, so depth stays exact without decoding them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ctx {
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

/// A port until its `</port>`: `state` comes from a child element.
pub(super) struct PendingPort {
    pub(super) protocol: Protocol,
    pub(super) port: u16,
    pub(super) state: Option<PortState>,
    pub(super) reason: Option<String>,
    pub(super) service: Option<Service>,
    pub(super) vulns: Vec<Vuln>,
    pub(super) scripts: usize,
    pub(super) at: u64,
}

pub(super) struct Parser {
    pub(super) lim: Limits,
    /// Everything but the hosts; `out.hosts` stays empty.
    pub(super) out: NmapRun,
    /// Hosts whose `</host>` was read so far (counted against `max_hosts`).
    pub(super) hosts_done: usize,
    /// A host just completed, waiting to be handed out by [`HostParser::next_host`].
    ready: Option<Host>,
    stack: Vec<Ctx>,
    root_closed: bool,
    pub(super) host: Option<Host>,
    pub(super) port: Option<PendingPort>,
    pub(super) osmatch: Option<OsMatch>,
    pub(super) vtables: Vec<VTable>,
    /// Text of the element being captured (`cpe`, vulners `elem`); reused.
    pub(super) text: String,
    /// Byte offset where the current event starts.
    pub(super) at: u64,
}

impl Parser {
    pub(super) fn new(lim: &Limits) -> Self {
        Self {
            lim: lim.clone(),
            out: NmapRun::default(),
            hosts_done: 0,
            ready: None,
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
            hosts_complete: self.hosts_done,
        }
    }

    pub(super) fn limit(&self, what: &'static str, limit: usize) -> Error {
        Error::Limit {
            offset: self.at,
            what,
            limit,
        }
    }

    pub(super) fn invalid(
        &self,
        element: &'static str,
        attribute: &'static str,
        value: &str,
    ) -> Error {
        Error::InvalidValue {
            offset: self.at,
            element,
            attribute,
            value: clip(value),
        }
    }

    pub(super) fn missing(&self, element: &'static str, attribute: &'static str) -> Error {
        Error::Missing {
            offset: self.at,
            element,
            attribute,
        }
    }

    pub(super) fn xml(&self, e: impl std::fmt::Display) -> Error {
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
                    self.hosts_done += 1;
                    self.ready = Some(host);
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
    pub(super) fn attrs<'e>(
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

/// Pull parser over an nmap XML document: hands out one [`Host`] at a time as its
/// `</host>` is read, so memory stays bounded by one host (and the [`Limits`]) however long
/// the document is. [`parse`](super::parse) and [`parse_partial`](super::parse_partial) are
/// built on it.
///
/// After `next_host` has returned `Ok(None)` or an error, it keeps returning `Ok(None)`;
/// [`run_info`](Self::run_info) then holds everything but the hosts.
pub struct HostParser<R: BufRead> {
    reader: Reader<Capped<R>>,
    buf: Vec<u8>,
    p: Parser,
    done: bool,
}

impl<R: BufRead> HostParser<R> {
    pub fn new(input: R, limits: &Limits) -> Self {
        // No trim_text: quick-xml 0.42 splits text at every `&`, and trimming each piece
        // would eat spaces around entities. Captured values are trimmed once at the end.
        // quick-xml 0.42 checks every event is UTF-8, so invalid bytes anywhere (even in an
        // attribute we skip) are `Error::Xml` at that element. It does not reject C0 control
        // characters; neither do we (nmap 4.x wrote them into <taskbegin>, see the tests).
        Self {
            reader: Reader::from_reader(Capped::new(input, limits.max_text_len)),
            buf: Vec::with_capacity(8 * 1024),
            p: Parser::new(limits),
            done: false,
        }
    }

    /// The next complete host (`</host>` seen), in document order, or `Ok(None)` at the end
    /// of the document (`</nmaprun>`). A document that ends before `</nmaprun>` gives
    /// [`Error::Truncated`] after its complete hosts. `max_hosts` bounds the total.
    pub fn next_host(&mut self) -> Result<Option<Host>, Error> {
        if self.done {
            return Ok(None);
        }
        let (p, reader, buf) = (&mut self.p, &mut self.reader, &mut self.buf);
        loop {
            buf.clear();
            reader.get_mut().start_event();
            p.at = reader.buffer_position();
            let step = match reader.read_event_into(buf) {
                Ok(Event::Start(e)) => p.open(&e, false),
                Ok(Event::Empty(e)) => p.open(&e, true),
                Ok(Event::End(_)) => p.close(),
                Ok(Event::Text(t)) => p.on_text(&t),
                Ok(Event::CData(t)) => p.on_text(&t),
                Ok(Event::GeneralRef(r)) => p.on_ref(&r),
                Ok(Event::Eof) => Err(p.truncated(reader.buffer_position())),
                Ok(_) => Ok(()), // declaration, PI, comment, DOCTYPE: ignored, never expanded
                Err(e) => Err(p.reader_error(e, reader)),
            };
            if let Err(e) = step {
                self.done = true;
                return Err(e);
            }
            if let Some(host) = p.ready.take() {
                return Ok(Some(host));
            }
            if p.root_closed {
                self.done = true; // whatever follows </nmaprun> is not ours
                return Ok(None);
            }
        }
    }

    /// Everything but the hosts (`hosts` is always empty): scanner version, args, start,
    /// `runstats`, progress. Complete once `next_host` has returned `Ok(None)` or an error.
    pub fn run_info(&self) -> &NmapRun {
        &self.p.out
    }

    /// The run info by value, for [`parse_partial`](super::parse_partial).
    pub(super) fn into_run_info(self) -> NmapRun {
        self.p.out
    }
}

pub(super) fn non_empty(v: Cow<'_, str>) -> Option<String> {
    let t = v.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

pub(super) fn parse_num<T: std::str::FromStr>(s: &str, ok: impl Fn(&T) -> bool) -> Option<T> {
    s.trim().parse().ok().filter(|v| ok(v))
}

/// Bounds hostile strings copied into errors.
pub(super) fn clip(s: &str) -> String {
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
