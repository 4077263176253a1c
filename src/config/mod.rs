//! Configuration: read the TOML file (or the embedded default), lay command-line overrides over it,
//! validate everything at once, and build the typed per-stage configs. Nothing binds a socket or opens
//! the store until this has succeeded; a bad file names the file, the key and what is wrong.

pub mod cli;
pub mod email;
pub mod file;
pub mod openstack;
mod redact;
pub mod udp;

use crate::inventory::TargetGroup;
use crate::judge::{Policy, Rule};
use crate::scan::{gmp, nmap, TcpSettings};
use file::{FileConfig, PortsField, TargetFile, DEFAULT_TOML};
use std::collections::HashSet;
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
    /// Clouds inventoried through OpenStack's APIs.
    pub openstack: Vec<openstack::OpenStackSource>,
    pub storage: StorageConfig,
    pub web: WebConfig,
    /// The digest e-mail; `None` when disabled.
    pub email: Option<email::EmailConfig>,
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

/// `[scan.tcp]` as the scanners take it (UDP shares its limits).
fn tcp_settings(t: &file::TcpFile) -> TcpSettings {
    TcpSettings {
        concurrency: t.concurrency,
        max_rate: t.max_rate,
        max_host_rate: t.max_host_rate,
        initial_timeout: t.initial_timeout,
        min_timeout: t.min_timeout,
        max_timeout: t.max_timeout,
        retries: t.retries,
    }
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

fn apply_overrides(file: &mut FileConfig, o: &Overrides, problems: &mut Vec<Problem>) {
    if let Some(v) = &o.listen_address {
        file.web.listen_address = v.clone();
    }
    if let Some(v) = &o.web_config_file {
        file.web.config_file = Some(v.clone());
    }
    if let Some(v) = &o.telemetry_path {
        file.web.telemetry_path = v.clone();
    }
    if let Some(v) = &o.storage_path {
        file.storage.path = v.clone();
    }
    if let Some(v) = o.concurrency {
        file.scan.tcp.concurrency = v;
    }
    if let Some(v) = o.max_rate {
        file.scan.tcp.max_rate = v;
    }
    if let Some(v) = o.retries {
        file.scan.tcp.retries = v;
    }
    let ports = match &o.ports {
        Some(spec) => match PortsField::try_from(spec.clone()) {
            Ok(p) => Some(p),
            Err(e) => {
                problems.push(Problem {
                    key: "--ports".into(),
                    message: e.to_string(),
                });
                None
            }
        },
        None => None,
    };
    if !o.targets.is_empty() {
        let mut nets = |list: &[String], flag: &str| {
            list.iter()
                .filter_map(|s| match s.parse() {
                    Ok(n) => Some(n),
                    Err(e) => {
                        problems.push(Problem {
                            key: flag.into(),
                            message: format!("{s:?} is not an address or CIDR: {e}"),
                        });
                        None
                    }
                })
                .collect::<Vec<_>>()
        };
        let cidrs = nets(&o.targets, "--target");
        let exclude = nets(&o.exclude, "--exclude");
        file.targets = vec![TargetFile {
            name: "cli".into(),
            cidrs,
            exclude,
            ports: ports.clone().unwrap_or_else(PortsField::top1000),
        }];
        // --target means exactly those targets: no cloud is inventoried.
        file.openstack.clear();
    } else if !o.exclude.is_empty() {
        problems.push(Problem {
            key: "--exclude".into(),
            message: "only applies together with --target".into(),
        });
    }
    if let Some(p) = ports {
        for t in &mut file.targets {
            t.ports = p.clone();
        }
        // --ports means exactly those ports, for the clouds' VMs too.
        for c in &mut file.openstack {
            c.ports = p.clone();
        }
    }
}

fn build(
    source: Source,
    mut file: FileConfig,
    overrides: &Overrides,
) -> Result<Config, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut problem = |key: String, message: String| problems.push(Problem { key, message });
    let mut override_problems = Vec::new();
    apply_overrides(&mut file, overrides, &mut override_problems);
    for p in override_problems {
        problem(p.key, p.message);
    }

    if file.targets.is_empty() && file.openstack.is_empty() {
        problem(
            "targets".into(),
            "nothing to scan; add a [[targets]] group with a name and cidrs, or an [[openstack]] cloud"
                .into(),
        );
    }
    let mut names = HashSet::new();
    for (i, t) in file.targets.iter().enumerate() {
        let key = format!("targets[{i}]");
        if t.name.trim().is_empty() {
            problem(format!("{key}.name"), "must not be empty".into());
        } else if !names.insert(t.name.clone()) {
            problem(
                format!("{key}.name"),
                format!(
                    "{:?} is used by another target group; names must be unique",
                    t.name
                ),
            );
        }
        if t.cidrs.is_empty() {
            problem(
                format!("{key}.cidrs"),
                "lists no addresses; give CIDRs or single addresses".into(),
            );
        }
        if t.ports.0.is_empty() {
            problem(format!("{key}.ports"), "lists no ports".into());
        }
    }
    let s = &file.schedule;
    if s.discovery < Duration::from_secs(1) {
        problem(
            "schedule.discovery".into(),
            "must be at least 1s (e.g. \"15m\")".into(),
        );
    }
    if s.jitter > s.discovery {
        problem(
            "schedule.jitter".into(),
            "must not exceed schedule.discovery".into(),
        );
    }
    let t = &file.scan.tcp;
    if t.concurrency == 0 {
        problem("scan.tcp.concurrency".into(), "must be at least 1".into());
    }
    if t.min_timeout.is_zero() || t.initial_timeout.is_zero() {
        problem(
            "scan.tcp.min_timeout".into(),
            "timeouts must be above zero".into(),
        );
    }
    if t.min_timeout > t.max_timeout {
        problem(
            "scan.tcp.min_timeout".into(),
            format!(
                "{} is above scan.tcp.max_timeout ({})",
                humantime::format_duration(t.min_timeout),
                humantime::format_duration(t.max_timeout)
            ),
        );
    }
    if t.retries > 10 {
        problem("scan.tcp.retries".into(), "must be 10 or less".into());
    }
    if t.max_hosts == 0 {
        problem("scan.tcp.max_hosts".into(), "must be at least 1".into());
    }
    let n = &file.scan.nmap;
    if n.version_intensity > 9 {
        problem(
            "scan.nmap.version_intensity".into(),
            "must be 0 to 9".into(),
        );
    }
    if n.timing > 5 {
        problem(
            "scan.nmap.timing".into(),
            "must be 0 to 5 (nmap's -T0 … -T5)".into(),
        );
    }
    if n.batch_hosts == 0 || n.parallel_batches == 0 {
        problem(
            "scan.nmap.batch_hosts".into(),
            "batch_hosts and parallel_batches must be at least 1".into(),
        );
    }
    let g = &file.scan.gmp;
    let gmp_password = if g.enabled {
        match read_password("scan.gmp", g.password_file.as_deref(), &g.password_env) {
            Ok(pw) => Some(pw),
            Err(p) => {
                problem(p.key, p.message);
                None
            }
        }
    } else {
        None
    };
    if g.enabled && !g.address.is_empty() && g.ca_file.is_none() && !g.insecure {
        problem(
            "scan.gmp.ca_file".into(),
            "TLS to gvmd needs ca_file (gvmd's certificate or its CA), or insecure = true".into(),
        );
    }
    let udp_ports = if n.udp_ports.trim().is_empty() {
        Vec::new()
    } else {
        match crate::ports::PortList::parse(&n.udp_ports) {
            Ok(l) => l.ports().to_vec(),
            Err(e) => {
                problem("scan.nmap.udp_ports".into(), e.to_string());
                Vec::new()
            }
        }
    };
    for (i, r) in file.policy.rules.iter().enumerate() {
        let key = format!("policy.rules[{i}]");
        if r.name.trim().is_empty()
            || r.name == crate::judge::policy::GLOBAL
            || r.name == crate::judge::policy::DEFAULT
            || r.name.starts_with(crate::judge::policy::METADATA_PREFIX)
        {
            problem(
                format!("{key}.name"),
                "must be set, not `global` or `default` and not start with `metadata:` (verdicts use those names)".into(),
            );
        }
        if r.allow.matcher.is_empty() && r.deny.matcher.is_empty() {
            problem(
                key.clone(),
                "has neither allow nor deny ports, so it can never decide".into(),
            );
        }
        for g in &r.groups {
            if !file.targets.iter().any(|t| &t.name == g)
                && !file.openstack.iter().any(|o| &o.name == g)
            {
                problem(
                    format!("{key}.groups"),
                    format!("names target group {g:?}, which is not configured"),
                );
            }
        }
    }
    let listen = match parse_listen_address(&file.web.listen_address) {
        Ok(a) => Some(a),
        Err(m) => {
            problem("web.listen_address".into(), m);
            None
        }
    };
    let tp = &file.web.telemetry_path;
    if !tp.starts_with('/') || tp == "/" || tp.starts_with("/api/") || tp.starts_with("/-/") {
        problem(
            "web.telemetry_path".into(),
            format!("{tp:?} must start with / and not clash with /, /api/ or /-/"),
        );
    }
    if let Some(path) = &file.web.config_file {
        if let Err(e) = crate::expose::webconfig::validate(path) {
            problem("web.config_file".into(), e.to_string());
        }
    }
    if file.storage.path.as_os_str().is_empty() {
        problem("storage.path".into(), "must not be empty".into());
    }
    for o in &file.openstack {
        if file.targets.iter().any(|t| t.name == o.name) {
            problem(
                "openstack".into(),
                format!(
                    "{:?} names a [[targets]] group too; group names must be unique",
                    o.name
                ),
            );
        }
    }
    let mut os_problems = Vec::new();
    let openstack = if file.openstack.is_empty() {
        Vec::new()
    } else {
        openstack::build(
            &file.openstack,
            &crate::inventory::openstack::clouds::Env::from_process(),
            &mut os_problems,
        )
    };
    for p in os_problems {
        problem(p.key, p.message);
    }
    let mut email_problems = Vec::new();
    let email = email::build(&file.email, &mut email_problems);
    for p in email_problems {
        problem(p.key, p.message);
    }
    let mut udp_problems = Vec::new();
    let udp = udp::build(
        &file.scan.udp,
        &tcp_settings(&file.scan.tcp),
        &mut udp_problems,
    );
    for p in udp_problems {
        problem(p.key, p.message);
    }
    let (Some(listen), true) = (listen, problems.is_empty()) else {
        return Err(problems);
    };

    let groups = file
        .targets
        .iter()
        .map(|t| TargetGroup {
            name: t.name.clone(),
            include: t.cidrs.clone(),
            exclude: t.exclude.clone(),
            ports: t.ports.0.clone(),
        })
        .collect();
    let policy = Policy {
        rules: file
            .policy
            .rules
            .iter()
            .map(|r| Rule {
                name: r.name.clone(),
                cidrs: r.cidrs.clone(),
                groups: r.groups.clone(),
                projects: r.projects.clone(),
                metadata: r.metadata.clone(),
                allow: r.allow.matcher.clone(),
                deny: r.deny.matcher.clone(),
            })
            .collect(),
        expected: file.policy.expected.matcher.clone(),
        metadata_key: Some(file.policy.metadata_key.trim().to_owned()).filter(|k| !k.is_empty()),
    };
    let t = &file.scan.tcp;
    let tcp = tcp_settings(t);
    Ok(Config {
        source,
        groups,
        scope: crate::inventory::scope::Scope {
            allow: file.scope.allow.clone(),
            exclude: file.scope.exclude.clone(),
        },
        max_hosts: t.max_hosts,
        discovery_interval: file.schedule.discovery,
        jitter: file.schedule.jitter,
        udp,
        tcp,
        nmap: n.enabled.then(|| nmap::Settings {
            path: n.path.clone(),
            version_intensity: n.version_intensity,
            timing: n.timing,
            host_timeout: n.host_timeout,
            batch_hosts: n.batch_hosts,
            parallel_batches: n.parallel_batches,
            batch_timeout: n.batch_timeout,
            udp_ports,
            os_detection: n.os_detection,
            stats_every: n.stats_every,
            vulners: n.vulners,
        }),
        gmp: gmp_password.map(|pw| {
            let endpoint = if g.address.is_empty() {
                gmp::Endpoint::Unix(g.socket.clone())
            } else {
                gmp::Endpoint::Tls {
                    addr: g.address.clone(),
                    ca_file: g.ca_file.clone(),
                    insecure: g.insecure,
                    server_name: g.server_name.clone(),
                }
            };
            let settings = gmp::Settings {
                endpoint,
                username: g.username.clone(),
                password: gmp::Password::new(pw),
                scan_config: g.scan_config.clone(),
                scanner: g.scanner.clone(),
                alive_test: g.alive_test.clone(),
                import_task: (!g.import_task.is_empty()).then(|| g.import_task.clone()),
                poll_interval: g.poll_interval,
                scan_timeout: g.scan_timeout,
                keep: g.keep,
                retries: g.retries,
                ..gmp::Settings::default()
            };
            (settings, g.interval)
        }),
        policy,
        openstack,
        storage: StorageConfig {
            path: file.storage.path.clone(),
            scan_retention: file.storage.scan_retention,
            event_retention: file.storage.event_retention,
        },
        web: WebConfig {
            listen,
            config_file: file.web.config_file.clone(),
            telemetry_path: file.web.telemetry_path.clone(),
            max_port_series: file.web.max_port_series,
        },
        email,
        file,
    })
}

#[cfg(test)]
mod tests;
