//! The vulnerabilities stage: a Greenbone scan (or report import) through GMP for the hosts with open
//! ports, on its own schedule, and the mapping of its results onto hosts and ports. Runs beside the
//! discovery cycle; the agent applies what it returns to the state as it is then.

use super::{cycle, schedule};
use crate::judge;
use crate::model::{now, HostState, Outcome, Protocol, ScanRun, Stage, VulnSource, Vulnerability};
use crate::scan::gmp::{self, VulnResult};
use crate::store::{self, Commit};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What one Greenbone run produced.
#[derive(Debug)]
pub struct Finished {
    pub run: ScanRun,
    /// Findings per host address, for every host the report covered (an empty list: none left).
    pub findings: BTreeMap<IpAddr, Vec<crate::judge::ReportedVuln>>,
    pub error: Option<(&'static str, String)>,
    /// gvmd's feeds and their timestamps (Unix seconds), when they could be read.
    pub feeds: Vec<(String, f64)>,
}

/// A feed version (`202405101234`, UTC) as Unix seconds.
pub fn feed_time(version: &str) -> Option<f64> {
    let v = version.trim();
    if v.len() < 8 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let padded = format!("{:0<12}", &v[..v.len().min(12)]);
    let text = format!(
        "{}-{}-{}T{}:{}:00Z",
        &padded[..4],
        &padded[4..6],
        &padded[6..8],
        &padded[8..10],
        &padded[10..12]
    );
    humantime::parse_rfc3339(&text)
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs_f64())
}

/// Ask gvmd for its feeds (their age tells whether a scan can find anything new). Failures are
/// logged and give nothing; they never fail the run.
async fn feeds(settings: &gmp::Settings) -> Vec<(String, f64)> {
    let result = async {
        let mut s = gmp::Session::connect(&settings.endpoint, settings.timeouts).await?;
        s.authenticate(&settings.username, &settings.password)
            .await?;
        s.get_feeds().await
    }
    .await;
    match result {
        Ok(feeds) => feeds
            .iter()
            .filter_map(|f| feed_time(&f.version).map(|t| (f.kind.clone(), t)))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read gvmd's feed versions");
            Vec::new()
        }
    }
}

/// [`targets`] that `[scope]` allows today: a host stored before the scope narrowed is not asked
/// about (cloud hosts are checked as addresses an API named).
pub fn scoped_targets(
    hosts: &BTreeMap<String, HostState>,
    scope: &crate::inventory::scope::Scope,
) -> Vec<(IpAddr, Vec<u16>)> {
    use crate::inventory::scope::Origin;
    let refused: std::collections::HashSet<IpAddr> = hosts
        .values()
        .filter(|h| {
            let origin = if h.vm.is_some() {
                Origin::Api
            } else {
                Origin::Config
            };
            scope.check(h.address, origin).is_err()
        })
        .map(|h| h.address)
        .collect();
    targets(hosts)
        .into_iter()
        .filter(|(ip, _)| !refused.contains(ip))
        .collect()
}

/// The hosts to ask about: every known host with open TCP ports, with those ports.
pub fn targets(hosts: &BTreeMap<String, HostState>) -> Vec<(IpAddr, Vec<u16>)> {
    hosts
        .values()
        .filter(|h| h.up)
        .map(|h| {
            let ports: Vec<u16> = h
                .ports
                .iter()
                .filter(|p| p.protocol == Protocol::Tcp)
                .map(|p| p.port)
                .collect();
            (h.address, ports)
        })
        .filter(|(_, ports)| !ports.is_empty())
        .collect()
}

/// Turn report results into findings per host. False positives, errors and log-level results are
/// dropped; a result with CVEs gives one finding per CVE, one without gives one under its NVT OID.
pub fn findings(results: &[VulnResult]) -> BTreeMap<IpAddr, Vec<crate::judge::ReportedVuln>> {
    let mut out: BTreeMap<IpAddr, Vec<crate::judge::ReportedVuln>> = BTreeMap::new();
    for r in results {
        if r.is_false_positive() || r.is_error() || r.severity <= 0.0 {
            continue;
        }
        let Ok(addr) = r.host.trim().parse::<IpAddr>() else {
            continue;
        };
        let at = match (r.port_number, r.protocol.as_deref()) {
            (Some(p), Some("udp")) => Some((Protocol::Udp, p)),
            (Some(p), _) => Some((Protocol::Tcp, p)),
            (None, _) => None,
        };
        let cvss = r.cvss_v3.or(r.cvss_base).or(Some(r.severity));
        let ids: Vec<String> = if r.cves.is_empty() {
            vec![r.nvt_oid.clone()]
        } else {
            r.cves.clone()
        };
        let list = out.entry(addr).or_default();
        for id in ids {
            if list.iter().any(|(a, v)| *a == at && v.id == id) {
                continue;
            }
            list.push((
                at,
                Vulnerability {
                    id,
                    cvss,
                    source: VulnSource::Greenbone,
                    exploit: false,
                    name: Some(r.nvt_name.clone()),
                    first_seen: 0.0, // apply_report sets it
                    last_seen: 0.0,
                },
            ));
        }
    }
    out
}

/// Run one Greenbone scan (or import) and map its report. Never panics; failures come back in
/// `error` with no findings, so the known vulnerabilities stay as they are.
pub async fn run(
    settings: gmp::Settings,
    hosts: Vec<(IpAddr, Vec<u16>)>,
    mut run: ScanRun,
    progress: Arc<gmp::Progress>,
    cancel: CancellationToken,
) -> Finished {
    run.targets = hosts.len() as u64;
    let asked: Vec<IpAddr> = hosts.iter().map(|(a, _)| *a).collect();
    let result = gmp::scan(&settings, &hosts, progress, cancel).await;
    run.finished = Some(now());
    let feeds = if result.is_ok() {
        feeds(&settings).await
    } else {
        Vec::new()
    };
    match result {
        Ok(outcome) => {
            let mut findings = findings(&outcome.results);
            // Every host the report covers gets a (possibly empty) list: absent findings are
            // remediated. An import covers the hosts its report names; a scan, the hosts asked.
            let covered: Vec<IpAddr> = if outcome.imported {
                outcome
                    .summary
                    .hosts
                    .iter()
                    .filter_map(|h| h.trim().parse().ok())
                    .collect()
            } else {
                asked
            };
            for h in covered {
                findings.entry(h).or_default();
            }
            run.outcome = Outcome::Success;
            run.hosts_up = findings.len() as u64;
            run.open_ports = 0;
            run.unexpected_ports = 0;
            tracing::info!(
                report = %outcome.report_id,
                results = outcome.results.len(),
                hosts = findings.len(),
                imported = outcome.imported,
                "Greenbone report applied"
            );
            Finished {
                run,
                findings,
                error: None,
                feeds,
            }
        }
        Err(e) => {
            tracing::warn!(kind = e.kind(), error = %e, "Greenbone run failed; known vulnerabilities kept");
            run.outcome = if e.kind() == "cancelled" {
                Outcome::Cancelled
            } else {
                Outcome::Failed
            };
            run.errors.push(e.to_string());
            Finished {
                run,
                findings: BTreeMap::new(),
                error: Some((e.kind(), e.to_string())),
                feeds,
            }
        }
    }
}

// === impl Agent: the stage's place in the agent loop ===

impl super::Agent {
    /// When the next Greenbone run is due: `None` when the stage is off or running, or before the
    /// first successful discovery (there is nothing to ask about yet).
    pub(super) fn vulnerabilities_due(&self) -> Option<Duration> {
        self.config.gmp.as_ref()?;
        if self.vulns_running {
            return None;
        }
        let view = self.state.read();
        view.stages.get(&Stage::Discovery)?.last_success?;
        let stage = view.stages.get(&Stage::Vulnerabilities)?;
        let delay = schedule::due(stage, now(), 0.0);
        Some(delay)
    }

    /// Start a Greenbone run in the background for the hosts with open ports.
    pub(super) async fn start_vulnerabilities(
        &mut self,
        done: &tokio::sync::mpsc::Sender<Finished>,
        shutdown: &CancellationToken,
    ) {
        let Some((settings, _)) = self.config.gmp.clone() else {
            return;
        };
        // Only what [scope] allows now (hosts stored before a narrower scope are not asked about).
        let hosts = scoped_targets(&self.state.read().hosts, &self.config.scope);
        let mut skeleton = cycle::new_run(&self.config);
        skeleton.stage = Stage::Vulnerabilities;
        skeleton.groups = Vec::new();
        let run = match store::blocking(&self.store, move |s| s.begin_run(skeleton)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot record a Greenbone run; skipping it");
                self.metrics.error(Stage::Store, e.kind());
                return;
            }
        };
        tracing::info!(
            scan_id = run.id,
            hosts = hosts.len(),
            "Greenbone run started"
        );
        let progress = Arc::new(crate::scan::gmp::Progress::default());
        self.state
            .set_progress(Stage::Vulnerabilities, Some(progress.clone()));
        if let Some(s) = self.state.write().stages.get_mut(&Stage::Vulnerabilities) {
            s.in_progress = true;
        }
        self.vulns_running = true;
        let (tx, cancel) = (done.clone(), shutdown.child_token());
        tokio::spawn(async move {
            let finished = self::run(settings, hosts, run, progress, cancel).await;
            // The loop is gone only at shutdown; the run then stays "running" and is marked
            // interrupted at the next start.
            let _ = tx.send(finished).await;
        });
    }

    /// Merge a finished Greenbone run into the current state and store it.
    pub(super) async fn apply_vulnerabilities(&mut self, done: Finished) {
        self.vulns_running = false;
        self.state.set_progress(Stage::Vulnerabilities, None);
        let t = now();
        let run = done.run;
        let mut changed = Vec::new();
        let mut events = Vec::new();
        let state = self.state.clone();
        let _findings_lock = state.lock_findings().await;
        {
            let view = self.state.read();
            for (addr, list) in &done.findings {
                if let Some(h) = view.hosts.values().find(|h| h.address == *addr) {
                    let j = judge::apply_report(h, list, run.id, t);
                    events.extend(j.events);
                    changed.extend(j.state);
                }
            }
        }
        // Greenbone speaks for vulnerabilities only: the hosts' other findings stay as they are.
        let findings = self.findings_of(
            &changed,
            &[],
            crate::judge::findings::Covers::Vulnerabilities,
            Some(run.id),
            t,
        );
        let commit = Commit {
            run: Some(run.clone()),
            hosts: changed.clone(),
            removed_hosts: Vec::new(),
            events,
            findings: findings.clone(),
            ..Default::default()
        };
        let stored = store::blocking(&self.store, move |s| s.commit(&commit)).await;
        let ok = run.outcome == Outcome::Success && stored.is_ok();
        let seconds = run.finished.unwrap_or(t) - run.started;
        self.metrics
            .run(Stage::Vulnerabilities, run.outcome.as_str(), seconds);
        if let Some((kind, _)) = &done.error {
            self.metrics.error(Stage::Vulnerabilities, kind);
        }
        if let Err(e) = stored {
            tracing::error!(error = %e, "cannot store the Greenbone results; keeping the known state");
            self.metrics.error(Stage::Store, e.kind());
        }
        let mut view = self.state.write();
        if ok {
            for h in changed {
                view.hosts.insert(h.id.clone(), h);
            }
            super::findings::publish(&mut view, findings);
        }
        if !done.feeds.is_empty() {
            view.gmp_feeds = done.feeds;
        }
        if let Some(s) = view.stages.get_mut(&Stage::Vulnerabilities) {
            // A cancelled run (shutdown) says nothing about gvmd's health.
            if run.outcome == Outcome::Cancelled {
                s.in_progress = false;
            } else {
                schedule::record(s, ok, run.finished.unwrap_or(t));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn greenbone_is_asked_only_about_hosts_in_todays_scope() {
        use crate::model::{PortFinding, Verdict};
        let host = |ip: &str| HostState {
            id: ip.into(),
            address: ip.parse().unwrap(),
            group: "g".into(),
            up: true,
            ports: vec![PortFinding {
                port: 22,
                protocol: Protocol::Tcp,
                verdict: Verdict::Expected,
                rule: "global".into(),
                since: 0.0,
                service: None,
                vulns: vec![],
                world: None,
                amplification: None,
                udp: None,
            }],
            first_seen: 0.0,
            last_seen: 0.0,
            last_scan: 0.0,
            last_scan_id: 1,
            udp_open_filtered: vec![],
            os: vec![],
            vulns: vec![],
            vm: None,
            exposure: None,
        };
        let hosts: BTreeMap<String, HostState> = ["10.0.0.1", "10.0.0.2", "192.0.2.1"]
            .into_iter()
            .map(|a| (a.to_string(), host(a)))
            .collect();
        let scope = crate::inventory::scope::Scope {
            allow: vec!["10.0.0.0/8".parse().unwrap()],
            exclude: vec!["10.0.0.2".parse().unwrap()],
        };
        let asked: Vec<String> = scoped_targets(&hosts, &scope)
            .into_iter()
            .map(|(ip, _)| ip.to_string())
            .collect();
        assert_eq!(asked, ["10.0.0.1"]);
        assert_eq!(
            scoped_targets(&hosts, &Default::default()).len(),
            3,
            "an empty scope keeps the operator's hosts"
        );
    }

    #[test]
    fn feed_versions_are_utc_timestamps() {
        assert_eq!(feed_time("202501010000"), Some(1_735_689_600.0));
        assert_eq!(feed_time("20250101"), Some(1_735_689_600.0));
        assert_eq!(feed_time(""), None);
        assert_eq!(feed_time("2025-01"), None);
    }

    #[test]
    fn report_results_map_to_hosts_and_ports() {
        let raw = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/gvm/reports/gmp22.8-report.xml"
        ))
        .unwrap();
        let mut p = crate::scan::gmp_xml::ReportParser::new(&raw[..], Default::default());
        let mut results = Vec::new();
        while let Some(r) = p.next_result().unwrap() {
            results.push(r);
        }
        let f = findings(&results);
        assert_eq!(f.len(), 1, "one host in the sample");
        let (_, list) = f.iter().next().unwrap();
        assert!(!list.is_empty());
        assert!(list.iter().all(|(_, v)| v.source == VulnSource::Greenbone
            && v.cvss.is_some_and(|c| c > 0.0)
            && v.name.is_some()));
        let with_cve = list
            .iter()
            .filter(|(_, v)| v.id.starts_with("CVE-"))
            .count();
        assert!(with_cve > 0, "{list:?}");
    }
}
