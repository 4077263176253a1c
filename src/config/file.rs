//! The config file as written: serde structs mirroring the TOML (unknown keys are errors), with the
//! defaults of the embedded `default.toml`. Values that have a syntax of their own — CIDRs, port
//! lists, durations — are parsed here, so their errors carry the file's line and column.

use crate::ports::{PortList, PortMatcher, PortSpecError};
use ipnetwork::IpNetwork;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// The embedded default configuration (also the documentation of every key).
pub const DEFAULT_TOML: &str = include_str!("../data/default.toml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub targets: Vec<TargetFile>,
    /// Every address any stage may send to, whatever named it.
    #[serde(default)]
    pub scope: ScopeFile,
    #[serde(default)]
    pub schedule: ScheduleFile,
    #[serde(default)]
    pub scan: ScanFile,
    #[serde(default)]
    pub policy: PolicyFile,
    /// How findings are confirmed and resolved.
    #[serde(default)]
    pub findings: super::findings::FindingsFile,
    #[serde(default)]
    pub storage: StorageFile,
    #[serde(default)]
    pub web: WebFile,
    /// The digest e-mail.
    #[serde(default)]
    pub email: super::email::EmailFile,
    /// Clouds whose VMs are inventoried through Keystone, Nova and Neutron.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub openstack: Vec<super::openstack::OpenStackFile>,
    /// This agent's shard of a fleet that splits the inventory.
    #[serde(default, skip_serializing_if = "super::shard::ShardFile::is_default")]
    pub shard: super::shard::ShardFile,
}

/// `[scope]`: `allow` bounds every inventory (empty: what the inventories name); `exclude` holds
/// for every group and cloud.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScopeFile {
    pub allow: Vec<IpNetwork>,
    pub exclude: Vec<IpNetwork>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetFile {
    pub name: String,
    /// CIDRs or single addresses.
    pub cidrs: Vec<IpNetwork>,
    #[serde(default)]
    pub exclude: Vec<IpNetwork>,
    #[serde(default = "default_ports")]
    pub ports: PortsField,
}

fn default_ports() -> PortsField {
    PortsField::top1000()
}

/// A TCP port list, as a string (`"top1000"`, `"1-1024,8080"`) or a list (`[22, "8000-8100"]`), kept
/// with its spelling for printing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PortsRepr", into = "String")]
pub struct PortsField(pub PortList);

/// The forms a port list may take in the file.
#[derive(Deserialize)]
#[serde(untagged)]
enum PortsRepr {
    Spec(String),
    List(Vec<PortItem>),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PortItem {
    Number(i64),
    Spec(String),
}

impl TryFrom<PortsRepr> for PortsField {
    type Error = PortSpecError;
    fn try_from(r: PortsRepr) -> Result<Self, Self::Error> {
        let spec = match r {
            PortsRepr::Spec(s) => s,
            PortsRepr::List(items) => items
                .into_iter()
                .map(|i| match i {
                    PortItem::Number(n) => n.to_string(),
                    PortItem::Spec(s) => s,
                })
                .collect::<Vec<_>>()
                .join(","),
        };
        PortsField::try_from(spec)
    }
}

impl PortsField {
    pub fn top1000() -> PortsField {
        PortsField(PortList::top1000())
    }
}

impl TryFrom<String> for PortsField {
    type Error = PortSpecError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        PortList::parse(&s).map(PortsField)
    }
}

impl From<PortsField> for String {
    fn from(p: PortsField) -> String {
        p.0.spec().to_string()
    }
}

/// Policy port specs (`22`, `53/udp`, `8000-8100/tcp`), kept as written for printing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct PortSpecs {
    pub specs: Vec<String>,
    pub matcher: PortMatcher,
}

impl TryFrom<Vec<String>> for PortSpecs {
    type Error = PortSpecError;
    fn try_from(specs: Vec<String>) -> Result<Self, Self::Error> {
        let matcher = PortMatcher::parse(&specs)?;
        Ok(PortSpecs { specs, matcher })
    }
}

impl From<PortSpecs> for Vec<String> {
    fn from(p: PortSpecs) -> Vec<String> {
        p.specs
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleFile {
    /// How often the discovery scan runs.
    #[serde(with = "humantime_serde")]
    pub discovery: Duration,
    /// Random delay added to each start, so many agents do not scan in lockstep.
    #[serde(with = "humantime_serde")]
    pub jitter: Duration,
}

impl Default for ScheduleFile {
    fn default() -> Self {
        ScheduleFile {
            discovery: Duration::from_secs(15 * 60),
            jitter: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScanFile {
    pub tcp: TcpFile,
    pub udp: super::udp::UdpFile,
    pub nmap: NmapFile,
    pub gmp: GmpFile,
    pub targeted: TargetedFile,
}

/// `[scan.targeted]`: passes over a few targets only (on-demand scans).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TargetedFile {
    /// On-demand scans each user may ask for per minute (0: no limit).
    pub max_per_minute: u32,
}

impl Default for TargetedFile {
    fn default() -> Self {
        TargetedFile { max_per_minute: 6 }
    }
}

/// Greenbone/OpenVAS through GMP: vulnerabilities of the hosts with open ports, on its own schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GmpFile {
    pub enabled: bool,
    /// gvmd's unix socket (used unless `address` is set).
    pub socket: PathBuf,
    /// `host:port` of gvmd's TLS listener; empty = the unix socket.
    pub address: String,
    /// CA (or gvmd's self-signed certificate) to trust for TLS.
    pub ca_file: Option<PathBuf>,
    /// Accept any certificate (logged loudly).
    pub insecure: bool,
    pub server_name: String,
    pub username: String,
    /// File whose first line is the password (preferred), else the environment variable below.
    pub password_file: Option<PathBuf>,
    pub password_env: String,
    /// How often a Greenbone scan (or import) runs.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    pub scan_config: String,
    pub scanner: String,
    pub alive_test: String,
    /// Import the latest finished report of this existing task instead of starting scans.
    pub import_task: String,
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub scan_timeout: Duration,
    /// stinger- tasks kept in gvmd; 0 = never delete.
    pub keep: usize,
    pub retries: u32,
    /// The networks gvmd can reach from where it runs; empty = every address. Hosts outside are
    /// not sent to it.
    pub reachable: Vec<IpNetwork>,
    /// Also send hosts the agent probed from inside a network namespace (a tenant's `qdhcp-`):
    /// only when gvmd reaches those networks from where it runs. Off: they are not sent, since
    /// gvmd would scan whatever has that address on its own network.
    pub namespaced_hosts: bool,
}

impl Default for GmpFile {
    fn default() -> Self {
        use crate::scan::gmp;
        let d = gmp::Settings::default();
        GmpFile {
            enabled: false,
            socket: PathBuf::from(gmp::DEFAULT_SOCKET),
            address: String::new(),
            ca_file: None,
            insecure: false,
            server_name: String::new(),
            username: d.username,
            password_file: None,
            password_env: "STINGER_GMP_PASSWORD".into(),
            interval: Duration::from_secs(24 * 3600),
            scan_config: d.scan_config,
            scanner: d.scanner,
            alive_test: d.alive_test,
            import_task: String::new(),
            poll_interval: d.poll_interval,
            scan_timeout: d.scan_timeout,
            keep: d.keep,
            retries: d.retries,
            reachable: Vec::new(),
            namespaced_hosts: false,
        }
    }
}

/// nmap service detection on the ports discovery found open.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NmapFile {
    pub enabled: bool,
    pub path: PathBuf,
    /// `--version-intensity`, 0-9.
    pub version_intensity: u8,
    /// `-T`, 0-5.
    pub timing: u8,
    #[serde(with = "humantime_serde")]
    pub host_timeout: Duration,
    /// Hosts per nmap process.
    pub batch_hosts: usize,
    /// nmap processes at once.
    pub parallel_batches: usize,
    /// A batch still running after this is killed.
    #[serde(with = "humantime_serde")]
    pub batch_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub stats_every: Duration,
    /// UDP ports to scan with `-sU` (needs root or CAP_NET_RAW); empty = none.
    pub udp_ports: String,
    /// `-O` (needs root or CAP_NET_RAW).
    pub os_detection: bool,
    /// nmap's `vulners` script: CVEs for identified versions (asks vulners.com).
    pub vulners: bool,
}

impl Default for NmapFile {
    fn default() -> Self {
        NmapFile {
            enabled: true,
            path: PathBuf::from("nmap"),
            version_intensity: 7,
            timing: 4,
            host_timeout: Duration::from_secs(300),
            batch_hosts: 16,
            parallel_batches: 2,
            batch_timeout: Duration::from_secs(900),
            stats_every: Duration::from_secs(10),
            udp_ports: String::new(),
            os_detection: false,
            vulners: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TcpFile {
    pub concurrency: usize,
    pub max_rate: u64,
    pub max_host_rate: u64,
    #[serde(with = "humantime_serde")]
    pub initial_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub min_timeout: Duration,
    #[serde(with = "humantime_serde")]
    pub max_timeout: Duration,
    pub retries: u32,
    pub max_hosts: u64,
    /// Addresses all target groups may name together.
    pub max_total_hosts: u64,
}

impl Default for TcpFile {
    fn default() -> Self {
        use crate::scan::defaults as d;
        TcpFile {
            concurrency: d::CONCURRENCY,
            max_rate: 0,
            max_host_rate: 0,
            initial_timeout: d::INITIAL_TIMEOUT,
            min_timeout: d::MIN_TIMEOUT,
            max_timeout: d::MAX_TIMEOUT,
            retries: d::RETRIES,
            max_hosts: 65536,
            max_total_hosts: 1 << 20,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyFile {
    /// Ports expected on every host unless a rule says otherwise.
    pub expected: PortSpecs,
    pub rules: Vec<RuleFile>,
    /// The VM metadata key under which a VM declares its own expected ports
    /// (`"8080/tcp, 9100"`); empty turns declarations off.
    pub metadata_key: String,
    /// Projects (id or name; `"*"`: every project) whose VMs may declare their own expected ports
    /// under `metadata_key`; empty (the default): none may.
    pub self_declare: Vec<String>,
    /// `[[policy.exceptions]]`, as written: each table is read key by key when the policy is built
    /// (`config::policy`), so every unknown key and bad value is reported at once with its exact key
    /// instead of the parse stopping at the first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exceptions: Vec<toml::Table>,
}

impl Default for PolicyFile {
    fn default() -> Self {
        let specs: Vec<String> = ["22/tcp", "80/tcp", "443/tcp"].map(String::from).to_vec();
        PolicyFile {
            expected: PortSpecs::try_from(specs).unwrap_or_default(),
            rules: Vec::new(),
            metadata_key: "stinger_expected_ports".into(),
            self_declare: Vec::new(),
            exceptions: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    pub name: String,
    #[serde(default)]
    pub cidrs: Vec<IpNetwork>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// OpenStack projects, by id or name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub projects: Vec<String>,
    /// VM metadata that must all be present (value `"*"`: any value).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub metadata: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub allow: PortSpecs,
    #[serde(default)]
    pub deny: PortSpecs,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageFile {
    pub path: PathBuf,
    #[serde(with = "humantime_serde")]
    pub scan_retention: Duration,
    #[serde(with = "humantime_serde")]
    pub event_retention: Duration,
}

impl Default for StorageFile {
    fn default() -> Self {
        StorageFile {
            path: PathBuf::from("./stinger-data"),
            scan_retention: Duration::from_secs(30 * 86400),
            event_retention: Duration::from_secs(90 * 86400),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebFile {
    /// `host:port`, `[v6]:port` or `:port` (all interfaces).
    pub listen_address: String,
    pub telemetry_path: String,
    /// Most `stinger_open_port_info` series exported; the rest are counted as dropped.
    pub max_port_series: usize,
    /// exporter-toolkit web configuration (TLS, basic auth); none = plain HTTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_file: Option<PathBuf>,
    /// Serve each VM's Nova metadata (tenant-set key/values, which may hold secrets) in the API.
    pub vm_metadata: bool,
    /// Most per-device series (the VMs' NIC and disk counters) exported; 0 = no limit.
    pub max_device_series: usize,
}

impl Default for WebFile {
    fn default() -> Self {
        WebFile {
            listen_address: "0.0.0.0:7864".into(),
            telemetry_path: "/metrics".into(),
            max_port_series: 10_000,
            config_file: None,
            vm_metadata: false,
            max_device_series: 100_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses_to_the_serde_defaults() {
        let parsed: FileConfig = toml::from_str(DEFAULT_TOML).unwrap();
        assert_eq!(parsed.schedule, ScheduleFile::default());
        assert_eq!(parsed.scan, ScanFile::default());
        assert_eq!(parsed.policy, PolicyFile::default());
        assert_eq!(parsed.storage, StorageFile::default());
        assert_eq!(parsed.web, WebFile::default());
        assert_eq!(parsed.email, super::super::email::EmailFile::default());
        assert_eq!(parsed.targets.len(), 1);
        assert_eq!(parsed.targets[0].ports.0.len(), 1000);
    }

    #[test]
    fn errors_carry_line_and_column() {
        let e =
            toml::from_str::<FileConfig>("[[targets]]\nname = \"a\"\ncidrs = [\"10.0.0.0/33\"]\n")
                .unwrap_err()
                .to_string();
        assert!(e.contains("line 3"), "{e}");
        let e = toml::from_str::<FileConfig>("[web]\nlisten = \":1\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `listen`"), "{e}");
        let e = toml::from_str::<FileConfig>("[schedule]\ndiscovery = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn port_lists_may_be_strings_or_lists() {
        let parse = |ports: &str| {
            toml::from_str::<FileConfig>(&format!(
                "[[targets]]\nname = \"a\"\ncidrs = [\"127.0.0.1\"]\nports = {ports}\n"
            ))
            .map(|c| c.targets[0].ports.0.ports().to_vec())
        };
        assert_eq!(parse("\"22,80-81\"").unwrap(), [22, 80, 81]);
        assert_eq!(parse("[22, \"80-81\"]").unwrap(), [22, 80, 81]);
        let e = parse("[0]").unwrap_err().to_string();
        assert!(e.contains("outside 1-65535") && e.contains("line 4"), "{e}");
    }

    #[test]
    fn prints_back_to_toml_that_parses_the_same() {
        let parsed: FileConfig = toml::from_str(DEFAULT_TOML).unwrap();
        let printed = toml::to_string_pretty(&parsed).unwrap();
        let again: FileConfig = toml::from_str(&printed).unwrap();
        assert_eq!(parsed, again);
    }
}
