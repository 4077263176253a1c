//! Streaming report parser: [`ReportParser`] pulls `report/results/result` one [`VulnResult`]
//! at a time within [`ReportLimits`], and collects the [`ReportSummary`].

use std::io::BufRead;

use quick_xml::events::Event;
use quick_xml::Reader;

use super::error::{doctype_error, map_qx};
use super::report_guard::Guard;
use super::report_state::{Got, Pending, State};
use super::Error;

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
