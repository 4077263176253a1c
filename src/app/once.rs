//! `stinger scan --once`: one discovery pass with no store, printed as a table for people or JSON for
//! programs — the nightly-cron use of the old script. Exit 0: every open port expected; 1: some not,
//! or a host answers every TCP port (one row for it, no row a port).

use super::cycle;
use crate::config::cli::Output;
use crate::config::Config;
use crate::model::{HostState, Outcome, Verdict};
use crate::scan::{self, Progress};
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Result of one pass.
#[derive(Debug)]
pub struct Report {
    pub pass: cycle::Pass,
}

impl Report {
    /// Unexpected open ports, plus one for each host that answers every TCP port.
    pub fn unexpected(&self) -> u64 {
        let tarpits = self.pass.hosts.iter();
        let tarpits = tarpits.filter(|h| h.answers_everything.is_some()).count();
        self.pass.run.unexpected_ports + tarpits as u64
    }

    /// Hosts with at least one open port (or that answer everything), in address order.
    fn hosts(&self) -> Vec<&HostState> {
        let mut hosts: Vec<&HostState> = self
            .pass
            .hosts
            .iter()
            .filter(|h| !h.ports.is_empty() || h.answers_everything.is_some())
            .collect();
        hosts.sort_by_key(|h| h.address);
        hosts
    }

    pub fn render(&self, output: Output) -> String {
        match output {
            Output::Json => self.json(),
            Output::Table => self.table(),
        }
    }

    fn json(&self) -> String {
        let hosts: Vec<_> = self
            .hosts()
            .into_iter()
            .map(|h| {
                json!({
                    "id": h.id, "address": h.address.to_string(), "group": h.group,
                    "ports": h.ports.iter().map(|p| json!({
                        "port": p.port, "protocol": p.protocol, "verdict": p.verdict, "rule": p.rule,
                    })).collect::<Vec<_>>(),
                    "answers_everything": h.answers_everything,
                })
            })
            .collect();
        let r = &self.pass.run;
        let rfc = |t: f64| {
            humantime::format_rfc3339_seconds(
                std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(t.max(0.0)),
            )
            .to_string()
        };
        let doc = json!({
            "scan": {
                "id": r.id, "started": rfc(r.started), "finished": r.finished.map(rfc),
                "outcome": r.outcome, "targets": r.targets, "probes": r.probes,
                "hosts_up": r.hosts_up, "open_ports": r.open_ports,
                "unexpected_ports": r.unexpected_ports, "errors": r.errors,
            },
            "hosts": hosts,
        });
        format!("{doc}\n")
    }

    fn table(&self) -> String {
        let r = &self.pass.run;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{:<40} {:>5} {:<5} {:<10} RULE",
            "HOST", "PORT", "PROTO", "VERDICT"
        );
        for h in self.hosts() {
            if let Some(a) = &h.answers_everything {
                let _ = writeln!(
                    s,
                    "{:<40} {:>5} {:<5} {:<10} {} of {} ports answered",
                    h.address, "*", "tcp", "ANSWERS_EVERYTHING", a.open, a.probed
                );
            }
            for p in &h.ports {
                let v = match p.verdict {
                    Verdict::Expected => "expected",
                    Verdict::Unexpected => "UNEXPECTED",
                };
                let _ = writeln!(
                    s,
                    "{:<40} {:>5} {:<5} {:<10} {}",
                    h.address, p.port, p.protocol, v, p.rule
                );
            }
        }
        let secs = r.finished.unwrap_or(r.started) - r.started;
        let _ = writeln!(
            s,
            "\n{} addresses, {} up, {} open ports, {} unexpected; {} probes in {:.2}s ({})",
            r.targets,
            r.hosts_up,
            r.open_ports,
            r.unexpected_ports,
            r.probes.open + r.probes.closed + r.probes.filtered + r.probes.error,
            secs,
            r.outcome.as_str()
        );
        s
    }
}

/// Scan once. Errors (inventory, cancelled) come back as a report whose outcome is not success.
pub async fn scan_once(config: &Config, cancel: CancellationToken) -> Report {
    let fd_limit = scan::raise_nofile_limit();
    let caps = cycle::nmap_capabilities(config).await;
    let ctx = cycle::Context {
        fd_limit,
        nmap: caps.as_ref(),
        progress: Arc::new(Progress::default()),
        nmap_progress: Arc::new(crate::scan::nmap::Progress::default()),
        cancel,
        focus: None,
    };
    let mut failures = Vec::new();
    let sources = match super::inventory::build(config) {
        Ok(sources) => sources,
        Err((e, static_sources)) => {
            tracing::error!(error = format!("{e:#}"), "OpenStack inventory is off");
            failures.push(format!("inventory: {e:#}"));
            static_sources
        }
    };
    // Every source's units, in the registry's order. A cloud that cannot be listed costs its own
    // VMs (named in the errors); CIDR groups that cannot be expanded fail the pass.
    let mut to_scan = super::inventory::ToScan::default();
    for f in super::inventory::fetch_all(&sources, &BTreeMap::new(), &ctx.cancel).await {
        match f.result {
            Some(Ok((inv, _))) => to_scan.units.extend(f.source.units(&inv.targets)),
            Some(Err(e)) if f.source.live() => {
                let name = f.source.name();
                tracing::error!(source = %name, error = %e, "{} inventory failed; its VMs are not scanned", f.source.kind());
                failures.push(format!("inventory of {name}: {e}"));
            }
            Some(Err(e)) => to_scan.failed.push(e.to_string()),
            None => {}
        }
    }
    let mut pass = cycle::discovery(
        config,
        cycle::new_run(config),
        &BTreeMap::new(),
        to_scan,
        ctx,
    )
    .await;
    // A cron job trusts the exit code: a cloud that could not be listed is a failure of the run.
    pass.run.errors.splice(0..0, failures);
    Report { pass }
}

/// The process exit code for a report: 0 all expected, 1 unexpected ports, 2 any stage failed
/// (an inventory, a namespace, nmap, the scan itself: the reasons are in `run.errors`).
pub fn exit_code(report: &Report) -> u8 {
    match report.pass.run.outcome {
        Outcome::Success if !report.pass.run.errors.is_empty() => 2,
        Outcome::Success if report.unexpected() == 0 => 0,
        Outcome::Success => 1,
        _ => 2,
    }
}
