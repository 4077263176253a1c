//! `[scan.tcp]`, `[scan.nmap]` and `[scan.gmp]`: the TCP connect scan's limits, nmap's service
//! detection and Greenbone through GMP, validated and built as the scanners take them. (`[scan.udp]`
//! is `udp.rs`'s.)

use super::file::{GmpFile, NmapFile, ScanFile, TcpFile};
use super::{read_password, Problem};
use crate::scan::{gmp, nmap, TcpSettings};
use std::time::Duration;

/// What the scan sections build.
#[derive(Debug, Clone)]
pub(crate) struct Scan {
    pub(crate) tcp: TcpSettings,
    /// `None` when disabled.
    pub(crate) nmap: Option<nmap::Settings>,
    /// The GMP settings and the interval; `None` when disabled.
    pub(crate) gmp: Option<(gmp::Settings, Duration)>,
}

/// `[scan.tcp]` as the scanners take it (UDP shares its limits).
pub(crate) fn tcp_settings(t: &TcpFile) -> TcpSettings {
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

/// Validate `[scan.tcp]`, `[scan.nmap]` and `[scan.gmp]` (reading gvmd's password when GMP is on)
/// and build their settings.
pub(crate) fn build(f: &ScanFile, problems: &mut Vec<Problem>) -> Option<Scan> {
    let before = problems.len();
    check_tcp(&f.tcp, problems);
    check_nmap(&f.nmap, problems);
    let gmp_password = gmp_password(&f.gmp, problems);
    let udp_ports = nmap_udp_ports(&f.nmap, problems);
    if problems.len() != before {
        return None;
    }
    let n = &f.nmap;
    Some(Scan {
        tcp: tcp_settings(&f.tcp),
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
            max_rate: f.tcp.max_rate,
            max_host_rate: f.tcp.max_host_rate,
        }),
        gmp: gmp_password.map(|pw| gmp_settings(&f.gmp, pw)),
    })
}

fn check_tcp(t: &TcpFile, problems: &mut Vec<Problem>) {
    let mut problem = |key: &str, message: String| {
        problems.push(Problem {
            key: key.into(),
            message,
        })
    };
    if t.concurrency == 0 {
        problem("scan.tcp.concurrency", "must be at least 1".into());
    }
    if t.min_timeout.is_zero() || t.initial_timeout.is_zero() {
        problem("scan.tcp.min_timeout", "timeouts must be above zero".into());
    }
    if t.min_timeout > t.max_timeout {
        problem(
            "scan.tcp.min_timeout",
            format!(
                "{} is above scan.tcp.max_timeout ({})",
                humantime::format_duration(t.min_timeout),
                humantime::format_duration(t.max_timeout)
            ),
        );
    }
    if t.retries > 10 {
        problem("scan.tcp.retries", "must be 10 or less".into());
    }
    if t.max_hosts == 0 {
        problem("scan.tcp.max_hosts", "must be at least 1".into());
    }
}

fn check_nmap(n: &NmapFile, problems: &mut Vec<Problem>) {
    let mut problem = |key: &str, message: &str| {
        problems.push(Problem {
            key: key.into(),
            message: message.into(),
        })
    };
    if n.version_intensity > 9 {
        problem("scan.nmap.version_intensity", "must be 0 to 9");
    }
    if n.timing > 5 {
        problem("scan.nmap.timing", "must be 0 to 5 (nmap's -T0 … -T5)");
    }
    if n.batch_hosts == 0 || n.parallel_batches == 0 {
        problem(
            "scan.nmap.batch_hosts",
            "batch_hosts and parallel_batches must be at least 1",
        );
    }
}

/// gvmd's password when GMP is on (`None` when off or unreadable), and whether its TLS can be
/// verified.
fn gmp_password(g: &GmpFile, problems: &mut Vec<Problem>) -> Option<String> {
    let password = if g.enabled {
        match read_password("scan.gmp", g.password_file.as_deref(), &g.password_env) {
            Ok(pw) => Some(pw),
            Err(p) => {
                problems.push(p);
                None
            }
        }
    } else {
        None
    };
    if g.enabled && !g.address.is_empty() && g.ca_file.is_none() && !g.insecure {
        problems.push(Problem {
            key: "scan.gmp.ca_file".into(),
            message: "TLS to gvmd needs ca_file (gvmd's certificate or its CA), or insecure = true"
                .into(),
        });
    }
    password
}

/// `scan.nmap.udp_ports` as a port list (empty: no UDP service detection).
fn nmap_udp_ports(n: &NmapFile, problems: &mut Vec<Problem>) -> Vec<u16> {
    if n.udp_ports.trim().is_empty() {
        return Vec::new();
    }
    match crate::ports::PortList::parse(&n.udp_ports) {
        Ok(l) => l.ports().to_vec(),
        Err(e) => {
            problems.push(Problem {
                key: "scan.nmap.udp_ports".into(),
                message: e.to_string(),
            });
            Vec::new()
        }
    }
}

/// `[scan.gmp]` as the GMP client takes it, with its interval.
fn gmp_settings(g: &GmpFile, pw: String) -> (gmp::Settings, Duration) {
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
        reachable: g.reachable.clone(),
        namespaced_hosts: g.namespaced_hosts,
        ..gmp::Settings::default()
    };
    (settings, g.interval)
}
