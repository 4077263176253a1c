//! Public data types of the nmap XML parser: the parsed run with its hosts, ports, services
//! and vulners findings, and the [`Limits`] that bound parsing.

/// Caps that keep memory and work bounded on hostile input. Every cap that is hit gives
/// [`Error::Limit`]; only `progress` is trimmed instead (it is advisory, and long scans
/// with `--stats-every` legitimately write thousands of entries).
///
/// [`Error::Limit`]: super::Error::Limit
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
