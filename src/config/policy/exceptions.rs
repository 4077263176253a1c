//! `[[policy.exceptions]]`: each entry is read key by key from its TOML table, so every unknown key
//! and bad value is reported at once, with its exact key (`policy.exceptions[2].expires`) and the
//! form it accepts, and never with the value itself (see `config::redact`). Builds the judge's
//! [`Exception`]s; one whose `expires` has passed still loads (it just no longer applies).

use super::super::Problem;
use crate::judge::exceptions::{Exception, HostSelector, Selectors};
use crate::model::{FindingKind, Protocol, UnixSeconds};
use ipnetwork::IpNetwork;
use toml::Value;

/// Every key an exception may have.
const KEYS: [&str; 12] = [
    "name", "host", "vm", "project", "cidr", "protocol", "port", "cve", "kind", "reason",
    "expires", "owner",
];

/// The keys that select findings: an exception needs one at least.
const SELECTORS: [&str; 8] = [
    "host", "vm", "project", "cidr", "protocol", "port", "cve", "kind",
];

/// Build every exception; each problem goes to `problems` (the result is then incomplete and must
/// not be used). Names must be unique: they are what an acknowledgement is recorded `by`.
pub(super) fn build(tables: &[toml::Table], problems: &mut Vec<Problem>) -> Vec<Exception> {
    let mut out: Vec<(usize, Exception)> = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let mut entry = Entry {
            index: i,
            table: t,
            problems: Vec::new(),
        };
        let e = entry.exception();
        problems.append(&mut entry.problems);
        if let Some(e) = e {
            if let Some((j, _)) = out.iter().find(|(_, o)| o.name == e.name) {
                problems.push(Problem {
                    key: format!("policy.exceptions[{i}].name"),
                    message: format!(
                        "repeats the name of policy.exceptions[{j}]; each exception needs a name of its own (it is recorded with the acknowledgements it makes)"
                    ),
                });
            }
            out.push((i, e));
        }
    }
    out.into_iter().map(|(_, e)| e).collect()
}

/// One `[[policy.exceptions]]` table being read, with the problems found so far.
struct Entry<'a> {
    index: usize,
    table: &'a toml::Table,
    problems: Vec<Problem>,
}

impl Entry<'_> {
    fn exception(&mut self) -> Option<Exception> {
        for k in self.table.keys() {
            if !KEYS.contains(&k.as_str()) {
                self.problem(
                    k,
                    format!("unknown key; an exception has {}", KEYS.join(", ")),
                );
            }
        }
        let name = self
            .string("name", "a name for the exception, e.g. \"legacy-ftp\"")
            .unwrap_or_else(|| format!("exceptions[{}]", self.index));
        let selectors = Selectors {
            host: self
                .string("host", "a host id or an address, e.g. \"10.0.0.5\"")
                .map(|h| HostSelector::parse(&h)),
            vm: self.string("vm", "a VM's instance id or name"),
            project: self.string("project", "a project's id or name"),
            cidrs: self.cidrs(),
            protocol: self.protocol(),
            ports: self.ports(),
            cve: self.cve(),
            kind: self.kind(),
        };
        if !SELECTORS.iter().any(|k| self.table.contains_key(*k)) {
            self.problem(
                "",
                format!(
                    "selects nothing; give at least one of {} (an exception never covers everything)",
                    SELECTORS.join(", ")
                ),
            );
        }
        let reason = self.required_string("reason", "why the risk is accepted");
        let expires = self.expires();
        let owner = self.string("owner", "who owns the accepted risk, e.g. \"team-db\"");
        if !self.problems.is_empty() {
            return None;
        }
        Some(Exception {
            name,
            reason: reason?,
            expires: expires?,
            owner,
            selectors,
        })
    }

    /// A problem with `key` of this entry (`""`: the entry itself).
    fn problem(&mut self, key: &str, message: String) {
        let entry = format!("policy.exceptions[{}]", self.index);
        self.problems.push(Problem {
            key: if key.is_empty() {
                entry
            } else {
                format!("{entry}.{key}")
            },
            message,
        });
    }

    /// An optional non-empty string (trimmed); `what` says what it should be.
    fn string(&mut self, key: &str, what: &str) -> Option<String> {
        match self.table.get(key)? {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            _ => {
                self.problem(key, format!("must be a non-empty string: {what}"));
                None
            }
        }
    }

    fn required_string(&mut self, key: &str, what: &str) -> Option<String> {
        if !self.table.contains_key(key) {
            self.problem(key, format!("is required: {what}, as a string"));
            return None;
        }
        self.string(key, what)
    }

    /// `cidr`: one CIDR or address, or a non-empty list of them.
    fn cidrs(&mut self) -> Vec<IpNetwork> {
        const FORM: &str = "use an address or a network such as \"10.0.0.0/8\" or \"2001:db8::/32\", or a list of them";
        let one = |v: &Value| v.as_str().and_then(|s| s.trim().parse::<IpNetwork>().ok());
        match self.table.get("cidr") {
            None => Vec::new(),
            Some(v @ Value::String(_)) => match one(v) {
                Some(c) => vec![c],
                None => {
                    self.problem("cidr", format!("is not a CIDR; {FORM}"));
                    Vec::new()
                }
            },
            Some(Value::Array(items)) if !items.is_empty() => {
                let mut cidrs = Vec::new();
                for (j, v) in items.iter().enumerate() {
                    match one(v) {
                        Some(c) => cidrs.push(c),
                        None => {
                            self.problem(&format!("cidr[{j}]"), format!("is not a CIDR; {FORM}"))
                        }
                    }
                }
                cidrs
            }
            Some(_) => {
                self.problem(
                    "cidr",
                    format!("must be a CIDR or a non-empty list; {FORM}"),
                );
                Vec::new()
            }
        }
    }

    fn protocol(&mut self) -> Option<Protocol> {
        let v = self.table.get("protocol")?;
        match v.as_str().map(|s| s.trim().to_ascii_lowercase()).as_deref() {
            Some("tcp") => Some(Protocol::Tcp),
            Some("udp") => Some(Protocol::Udp),
            _ => {
                self.problem("protocol", "must be \"tcp\" or \"udp\"".into());
                None
            }
        }
    }

    /// `port`: a number, or a string holding a number or a range `first-last`.
    fn ports(&mut self) -> Option<std::ops::RangeInclusive<u16>> {
        let v = self.table.get("port")?;
        let port = |s: &str| s.trim().parse::<u16>().ok().filter(|p| *p != 0);
        let range = match v {
            Value::Integer(n) => u16::try_from(*n).ok().filter(|p| *p != 0).map(|p| p..=p),
            Value::String(s) => match s.split_once('-') {
                None => port(s).map(|p| p..=p),
                Some((a, b)) => match (port(a), port(b)) {
                    (Some(a), Some(b)) if a <= b => Some(a..=b),
                    _ => None,
                },
            },
            _ => None,
        };
        if range.is_none() {
            self.problem(
                "port",
                "must be a port 1-65535 (e.g. 5432) or a range with its first port not above its last (e.g. \"5000-5010\")".into(),
            );
        }
        range
    }

    /// `cve`: `CVE-<year>-<number>`, any case; kept upper case.
    fn cve(&mut self) -> Option<String> {
        let v = self.table.get("cve")?;
        let id = v.as_str().map(|s| s.trim().to_ascii_uppercase());
        match id {
            Some(id) if is_cve(&id) => Some(id),
            _ => {
                self.problem(
                    "cve",
                    "must be a CVE id such as \"CVE-2023-38408\" (any case)".into(),
                );
                None
            }
        }
    }

    fn kind(&mut self) -> Option<FindingKind> {
        let v = self.table.get("kind")?;
        match v.as_str().and_then(|s| FindingKind::parse(s.trim())) {
            Some(k) => Some(k),
            None => {
                let kinds: Vec<&str> = FindingKind::ALL.iter().map(|k| k.as_str()).collect();
                self.problem("kind", format!("must be one of {}", kinds.join(", ")));
                None
            }
        }
    }

    /// `expires`: a date (00:00 UTC that day) or a timestamp with an offset, as a string or a TOML
    /// date / offset date-time.
    fn expires(&mut self) -> Option<UnixSeconds> {
        const FORM: &str = "a date such as \"2027-01-31\" (00:00 UTC that day) or an RFC 3339 timestamp with an offset such as \"2027-01-31T18:00:00Z\" or \"2027-01-31T18:00:00+01:00\"";
        let Some(v) = self.table.get("expires") else {
            self.problem(
                "expires",
                format!("is required (an exception must end): {FORM}"),
            );
            return None;
        };
        let text = match v {
            Value::String(s) => s.trim().to_string(),
            Value::Datetime(d) => d.to_string(),
            _ => String::new(),
        };
        match parse_expiry(&text) {
            Some(t) => Some(t),
            None => {
                self.problem("expires", format!("must be {FORM}"));
                None
            }
        }
    }
}

/// `CVE-YYYY-NNNN…`, upper case.
fn is_cve(id: &str) -> bool {
    let mut parts = id.split('-');
    let (Some("CVE"), Some(year), Some(number), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    year.len() == 4
        && year.bytes().all(|b| b.is_ascii_digit())
        && number.len() >= 4
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// A date (`2027-01-31`, 00:00 UTC) or an RFC 3339 timestamp with an offset, as Unix seconds.
/// A date-time without an offset is refused: which zone it meant is unknown.
pub(super) fn parse_expiry(s: &str) -> Option<UnixSeconds> {
    if s.contains(['T', 't', ' ']) {
        let ts: jiff::Timestamp = s.parse().ok()?;
        let d = ts.as_duration();
        return Some(d.as_secs_f64());
    }
    let date: jiff::civil::Date = s.parse().ok()?;
    let ts = date.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    Some(ts.as_second() as f64)
}
