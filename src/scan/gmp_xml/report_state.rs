//! The report parser's element state: the role of each element by its path ([`Tag`]), the
//! result being read ([`Pending`]), and the [`VulnResult`]s and summary built from them.

use quick_xml::events::{BytesRef, BytesStart};

use super::error::snippet;
use super::report::{ReportLimits, ReportSummary, VulnResult};
use super::responses::{attr, non_empty, push_ref, read_status};
use super::Error;

/// Element roles the report parser cares about; everything else is `Other` and its text is skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tag {
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
pub(super) struct Pending {
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
pub(super) enum Got {
    Result(VulnResult),
    /// A result that could not be built; the parser can continue.
    Bad(Error),
    End,
}

#[derive(Debug)]
pub(super) struct State {
    pub(super) limits: ReportLimits,
    pub(super) stack: Vec<Tag>,
    pub(super) text: String,
    pub(super) rc_own: String,
    pub(super) rc_full: Option<u64>,
    pub(super) rc_filtered: Option<u64>,
    pub(super) pending: Pending,
    pub(super) results_seen: u64,
    pub(super) summary: ReportSummary,
}

impl State {
    pub(super) fn open(&mut self, e: &BytesStart<'_>, offset: u64) -> Result<(), Error> {
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

    pub(super) fn text(&mut self, t: &str) -> Result<(), Error> {
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

    pub(super) fn general_ref(&mut self, r: &BytesRef<'_>, offset: u64) -> Result<(), Error> {
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

    pub(super) fn close(&mut self) -> Result<Option<Got>, Error> {
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
            // Pre-GMP-8 exports: log-level results carry an empty cvss_base and threat `Log`.
            (None, None)
                if p.threat.as_deref().is_some_and(|t| {
                    ["Log", "Debug", "None", "False Positive"]
                        .iter()
                        .any(|l| t.trim().eq_ignore_ascii_case(l))
                }) =>
            {
                0.0
            }
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
