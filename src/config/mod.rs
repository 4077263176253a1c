//! Configuration: read the TOML file (or the embedded default), lay command-line overrides over it,
//! validate everything at once, and build the typed per-stage configs. Nothing binds a socket or opens
//! the store until this has succeeded; a bad file names the file, the key and what is wrong.

pub mod cli;
pub mod email;
pub mod file;
pub mod findings;
pub mod openstack;
mod overrides;
mod policy;
mod redact;
mod scan;
mod schedule;
pub mod shard;
mod targets;
pub mod udp;
mod web;

use crate::inventory::TargetGroup;
use crate::judge::Policy;
use crate::scan::{gmp, nmap, TcpSettings};
use file::{FileConfig, DEFAULT_TOML};
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Embedded,
    File(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Embedded => f.write_str("the embedded default configuration"),
            Source::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Values given on the command line; each replaces the file's key of the same name.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen_address: Option<String>,
    pub web_config_file: Option<PathBuf>,
    pub telemetry_path: Option<String>,
    pub storage_path: Option<PathBuf>,
    pub concurrency: Option<usize>,
    pub max_rate: Option<u64>,
    pub retries: Option<u32>,
    /// Replace the target groups with one group `cli` of these CIDRs (`scan --target`).
    pub targets: Vec<String>,
    pub exclude: Vec<String>,
    /// Replace every group's port list (`scan --ports`).
    pub ports: Option<String>,
    /// `--shard.count`.
    pub shard_count: Option<u32>,
    /// `--shard.index`: a number or `hostname`.
    pub shard_index: Option<String>,
}

/// One problem found while loading, with the key it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

/// A configuration that cannot be used, with every problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub source: Source,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration in {}:", self.source)?;
        for p in &self.problems {
            if p.key.is_empty() {
                write!(f, "\n  - {}", p.message)?;
            } else {
                write!(f, "\n  - {}: {}", p.key, p.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Storage settings.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    pub path: PathBuf,
    pub scan_retention: Duration,
    pub event_retention: Duration,
}

/// Web settings.
#[derive(Debug, Clone, PartialEq)]
pub struct WebConfig {
    pub listen: SocketAddr,
    /// exporter-toolkit web configuration file, validated at load.
    pub config_file: Option<PathBuf>,
    pub telemetry_path: String,
    pub max_port_series: usize,
    /// `GET /api/v1/vms/{id}` shows the VM's Nova metadata (else it is left out).
    pub vm_metadata: bool,
    /// Most per-device (NIC and disk) series of all VMs together; 0 = no limit.
    pub max_device_series: usize,
}

/// The validated configuration, as typed per-stage configs.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: Source,
    /// The effective file configuration (after overrides), for `check-config` to print.
    pub file: FileConfig,
    pub groups: Vec<TargetGroup>,
    /// The one filter every address passes before any stage may send to it.
    pub scope: crate::inventory::scope::Scope,
    pub max_hosts: u64,
    pub discovery_interval: Duration,
    pub jitter: Duration,
    pub tcp: TcpSettings,
    /// The native UDP probes (amplifiers, open resolvers); `None` when disabled.
    pub udp: Option<crate::scan::udp::Settings>,
    /// nmap service detection; `None` when disabled.
    pub nmap: Option<nmap::Settings>,
    /// Greenbone through GMP and its interval; `None` when disabled.
    pub gmp: Option<(gmp::Settings, Duration)>,
    pub policy: Policy,
    /// How findings are confirmed and resolved.
    pub findings: crate::judge::findings::Settings,
    /// The longest acknowledgement the API accepts.
    pub max_ack: Duration,
    /// On-demand scans each user may ask for per minute (`[scan.targeted]`; 0: no limit).
    pub scans_per_minute: u32,
    /// Clouds inventoried through OpenStack's APIs.
    pub openstack: Vec<openstack::OpenStackSource>,
    pub storage: StorageConfig,
    pub web: WebConfig,
    /// The digest e-mail; `None` when disabled.
    pub email: Option<email::EmailConfig>,
    /// This agent's shard: it scans, stores and exports only the targets it owns.
    pub shard: crate::inventory::shard::Shard,
}

impl Config {
    /// The effective configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(&self.file)
            .unwrap_or_else(|e| format!("# cannot print the configuration: {e}\n"))
    }
}

/// Load the file at `path` (or the embedded default), apply overrides, validate, build.
pub fn load(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
    let source = path.map_or(Source::Embedded, |p| Source::File(p.to_path_buf()));
    let fail = |problems: Vec<Problem>| ConfigError {
        source: source.clone(),
        problems,
    };
    let text = match path {
        None => DEFAULT_TOML.to_string(),
        Some(p) => std::fs::read_to_string(p).map_err(|e| {
            fail(vec![Problem {
                key: String::new(),
                message: format!("cannot read the file: {e}"),
            }])
        })?,
    };
    let file: FileConfig = toml::from_str(&text).map_err(|e| {
        fail(vec![Problem {
            key: String::new(),
            message: redact::parse_error(&e, &text),
        }])
    })?;
    build(source.clone(), file, overrides).map_err(fail)
}

/// Parse a config from a string (tests and `check-config` of generated configs).
pub fn from_str(text: &str, overrides: &Overrides) -> Result<Config, ConfigError> {
    let source = Source::File(PathBuf::from("<string>"));
    let file: FileConfig = toml::from_str(text).map_err(|e| ConfigError {
        source: source.clone(),
        problems: vec![Problem {
            key: String::new(),
            message: redact::parse_error(&e, text),
        }],
    })?;
    build(source.clone(), file, overrides).map_err(|problems| ConfigError { source, problems })
}

/// Parse `host:port`, `[v6]:port` or `:port` (all IPv4 interfaces).
pub fn parse_listen_address(s: &str) -> Result<SocketAddr, String> {
    let full = if s.starts_with(':') {
        format!("0.0.0.0{s}")
    } else {
        s.to_string()
    };
    full.parse().map_err(|_| {
        format!("{s:?} is not an address to listen on; use IP:PORT, [IPv6]:PORT or :PORT")
    })
}

/// A password as a config section names it: the first line of `file` (preferred), else the
/// environment variable `env`. The problem names `<section>.password_file` or `.password_env`.
pub(crate) fn read_password(
    section: &str,
    file: Option<&Path>,
    env: &str,
) -> Result<String, Problem> {
    let problem = |key: &str, message: String| Problem {
        key: format!("{section}.{key}"),
        message,
    };
    if let Some(p) = file {
        let text = std::fs::read_to_string(p)
            .map_err(|e| problem("password_file", format!("cannot read {}: {e}", p.display())))?;
        return match text.lines().next() {
            Some(first) if !first.is_empty() => Ok(first.to_string()),
            _ => Err(problem(
                "password_file",
                format!("{} is empty", p.display()),
            )),
        };
    }
    match std::env::var(env) {
        Ok(pw) if !pw.is_empty() => Ok(pw),
        _ => Err(problem(
            "password_env",
            format!("no password: set the environment variable {env} or {section}.password_file"),
        )),
    }
}

/// Lay the overrides over the file, run every section's builder (each reports its own problems,
/// so all of them are reported at once) and assemble the config when none found any.
fn build(
    source: Source,
    mut file: FileConfig,
    overrides: &Overrides,
) -> Result<Config, Vec<Problem>> {
    let mut problems = Vec::new();
    overrides::apply(&mut file, overrides, &mut problems);
    let targets = targets::build(
        &file.targets,
        &file.openstack,
        &file.scope,
        (file.scan.tcp.max_hosts, file.scan.tcp.max_total_hosts),
        &mut problems,
    );
    let schedule = schedule::build(&file.schedule, &mut problems);
    let scan = scan::build(&file.scan, &mut problems);
    let policy = policy::build(&file.policy, &file.targets, &file.openstack, &mut problems);
    let findings = findings::build(&file.findings, &mut problems);
    let web = web::build(&file.web, &mut problems);
    let storage = web::build_storage(&file.storage, &mut problems);
    targets::check_cloud_names(&file.targets, &file.openstack, &mut problems);
    let openstack = if file.openstack.is_empty() {
        Vec::new()
    } else {
        openstack::build(
            &file.openstack,
            &crate::inventory::openstack::clouds::Env::from_process(),
            &mut problems,
        )
    };
    let email = email::build(&file.email, &mut problems);
    let shard = shard::build(&file.shard, &mut problems);
    let udp = udp::build(
        &file.scan.udp,
        &scan::tcp_settings(&file.scan.tcp),
        &mut problems,
    );
    let (
        Some(targets),
        Some((discovery_interval, jitter)),
        Some(scan),
        Some(policy),
        Some((findings, max_ack)),
        Some(web),
        Some(storage),
        Some(shard),
        true,
    ) = (
        targets,
        schedule,
        scan,
        policy,
        findings,
        web,
        storage,
        shard,
        problems.is_empty(),
    )
    else {
        return Err(problems);
    };
    Ok(Config {
        source,
        groups: targets.groups,
        scope: targets.scope,
        max_hosts: targets.max_hosts,
        discovery_interval,
        jitter,
        udp,
        tcp: scan.tcp,
        nmap: scan.nmap,
        gmp: scan.gmp,
        policy,
        findings,
        max_ack,
        scans_per_minute: file.scan.targeted.max_per_minute,
        openstack,
        storage,
        web,
        email,
        shard,
        file,
    })
}

#[cfg(test)]
mod tests;
