//! The vulnerabilities stage in the agent: which hosts to ask Greenbone about (those with open
//! ports), on its own schedule, and whose its answers are (by host identity, never by address
//! alone). Greenbone is a [`scan::Prober`] of the assess phase ([`gmp::Greenbone`], registered in
//! [`scanner`]): it runs the scan or import and returns each covered address's report as a model
//! observation. Runs beside the discovery cycle; the agent applies what it returns to the state as
//! it is then.

use super::{cycle, schedule};
use crate::judge;
use crate::model::{now, HostState, Outcome, Protocol, ScanRun, Stage};
use crate::scan::{self, gmp};
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
    /// The hosts behind each address asked about ([`Asked::ids`]): the findings go to them.
    pub ids: BTreeMap<IpAddr, Vec<String>>,
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

/// What a Greenbone run asks about, and who answers for what it reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Asked {
    /// Each address sent to gvmd, with the union of its hosts' open TCP ports.
    pub hosts: Vec<(IpAddr, Vec<u16>)>,
    /// The hosts (by id) behind each address sent: a result for the address is theirs, never
    /// another host's that happens to have the same address (e.g. in a tenant's namespace).
    pub ids: BTreeMap<IpAddr, Vec<String>>,
    /// Hosts with open ports left out because they were probed from a network namespace.
    pub namespaced: usize,
    /// Hosts with open ports left out because gvmd cannot reach their address.
    pub unreachable: usize,
}

/// The hosts to ask gvmd about: every known host that is up with open TCP ports, that `[scope]`
/// allows today (a host stored before the scope narrowed is not asked about; cloud hosts are
/// checked as addresses an API named), that gvmd can reach (`reachable`), and that was not probed
/// from a network namespace unless `namespaced_hosts` says gvmd reaches those networks too: gvmd
/// scans from where it runs, and an address inside a tenant's network means another machine there.
pub fn targets(
    hosts: &BTreeMap<String, HostState>,
    scope: &crate::inventory::scope::Scope,
    settings: &gmp::Settings,
) -> Asked {
    use crate::inventory::scope::Origin;
    let mut asked = Asked::default();
    let mut ports: BTreeMap<IpAddr, std::collections::BTreeSet<u16>> = BTreeMap::new();
    for h in hosts.values().filter(|h| h.up) {
        let open: Vec<u16> = h
            .ports
            .iter()
            .filter(|p| p.protocol == Protocol::Tcp)
            .map(|p| p.port)
            .collect();
        if open.is_empty() {
            continue;
        }
        let origin = if h.vm.is_some() {
            Origin::Api
        } else {
            Origin::Config
        };
        if scope.check(h.address, origin).is_err() {
            continue;
        }
        let namespaced = h.vm.as_ref().is_some_and(|v| v.namespace.is_some());
        if namespaced && !settings.namespaced_hosts {
            asked.namespaced += 1;
            continue;
        }
        let reachable = settings.reachable.is_empty()
            || settings.reachable.iter().any(|n| n.contains(h.address));
        if !reachable {
            asked.unreachable += 1;
            continue;
        }
        ports.entry(h.address).or_default().extend(open);
        asked.ids.entry(h.address).or_default().push(h.id.clone());
    }
    asked.hosts = ports
        .into_iter()
        .map(|(a, p)| (a, p.into_iter().collect()))
        .collect();
    asked
}

/// Each address's results with the hosts they belong to: by identity, the hosts that were asked
/// about under that address ([`Asked::ids`]) and still are known, never any other host that has the
/// address (another tenant's VM in its own network, or a host that came after the run started).
pub fn owners<'a, T>(
    findings: &'a BTreeMap<IpAddr, T>,
    ids: &'a BTreeMap<IpAddr, Vec<String>>,
    hosts: &'a BTreeMap<String, HostState>,
) -> impl Iterator<Item = (&'a HostState, &'a T)> + 'a {
    findings.iter().flat_map(move |(addr, list)| {
        ids.get(addr)
            .into_iter()
            .flatten()
            .filter_map(|id| hosts.get(id))
            .map(move |h| (h, list))
    })
}

/// The registry of the assess phase: the scanner a Greenbone run asks (one [`scan::Prober`]).
pub fn scanner(settings: &gmp::Settings, progress: Arc<gmp::Progress>) -> Arc<dyn scan::Prober> {
    Arc::new(gmp::Greenbone::new(settings.clone(), progress))
}

/// Run one Greenbone scan (or import) through its prober and collect each covered address's
/// report. Never panics; failures come back in `error` with no findings, so the known
/// vulnerabilities stay as they are.
pub async fn run(
    settings: gmp::Settings,
    asked: Asked,
    mut run: ScanRun,
    progress: Arc<gmp::Progress>,
    cancel: CancellationToken,
) -> Finished {
    let Asked { hosts, ids, .. } = asked;
    run.targets = hosts.len() as u64;
    let (addresses, open): (Vec<IpAddr>, Vec<Vec<u16>>) = hosts.into_iter().unzip();
    let job = scan::Job::on_open(addresses, open, None, cancel);
    let asked = job.addresses.clone();
    let result = scanner(&settings, progress).probe(job).await;
    run.finished = Some(now());
    let feeds = if result.is_ok() {
        feeds(&settings).await
    } else {
        Vec::new()
    };
    match result {
        Ok(out) => {
            // Every host the report covers has a (possibly empty) list: absent findings are
            // remediated.
            let findings: BTreeMap<IpAddr, Vec<judge::ReportedVuln>> = asked
                .iter()
                .copied()
                .zip(out.hosts)
                .filter_map(|(address, obs)| Some((address, obs.reported?)))
                .collect();
            run.outcome = Outcome::Success;
            run.hosts_up = findings.len() as u64;
            run.open_ports = 0;
            run.unexpected_ports = 0;
            Finished {
                run,
                findings,
                ids,
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
                ids,
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
        let asked = targets(&self.state.read().hosts, &self.config.scope, &settings);
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
            hosts = asked.hosts.len(),
            skipped_namespaced = asked.namespaced,
            skipped_unreachable = asked.unreachable,
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
            let finished = self::run(settings, asked, run, progress, cancel).await;
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
            for (h, list) in owners(&done.findings, &done.ids, &view.hosts) {
                let j = judge::apply_report(h, list, run.id, t);
                events.extend(j.events);
                changed.extend(j.state);
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

    fn host(id: &str, ip: &str) -> HostState {
        use crate::model::{PortFinding, Verdict};
        HostState {
            id: id.into(),
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
            answers_everything: None,
        }
    }

    /// A cloud host probed from `namespace` (`None`: the agent's own network).
    fn vm_host(id: &str, ip: &str, namespace: Option<&str>) -> HostState {
        let mut h = host(id, ip);
        h.vm = Some(crate::model::VmLink {
            vm_id: id.split('/').next().unwrap().into(),
            vm_name: "vm".into(),
            project_id: "p".into(),
            project_name: None,
            port_id: None,
            kind: crate::model::AddressKind::Fixed,
            network: "n".into(),
            namespace: namespace.map(Into::into),
        });
        h
    }

    fn by_id(hosts: Vec<HostState>) -> BTreeMap<String, HostState> {
        hosts.into_iter().map(|h| (h.id.clone(), h)).collect()
    }

    #[test]
    fn greenbone_is_asked_only_about_hosts_in_todays_scope() {
        let hosts = by_id(
            ["10.0.0.1", "10.0.0.2", "192.0.2.1"]
                .into_iter()
                .map(|a| host(a, a))
                .collect(),
        );
        let scope = crate::inventory::scope::Scope {
            allow: vec!["10.0.0.0/8".parse().unwrap()],
            exclude: vec!["10.0.0.2".parse().unwrap()],
        };
        let settings = gmp::Settings::default();
        let asked: Vec<String> = targets(&hosts, &scope, &settings)
            .hosts
            .into_iter()
            .map(|(ip, _)| ip.to_string())
            .collect();
        assert_eq!(asked, ["10.0.0.1"]);
        assert_eq!(
            targets(&hosts, &Default::default(), &settings).hosts.len(),
            3,
            "an empty scope keeps the operator's hosts"
        );
    }

    #[test]
    fn greenbone_gets_only_what_it_can_reach_and_results_go_back_by_identity() {
        // Two tenants' VMs share 10.0.0.5, each probed inside its network's namespace; a VM with
        // a floating IP probed from the agent's network; a CIDR host outside what gvmd reaches.
        let hosts = by_id(vec![
            vm_host("a/pa/10.0.0.5", "10.0.0.5", Some("qdhcp-n1")),
            vm_host("b/pb/10.0.0.5", "10.0.0.5", Some("qdhcp-n2")),
            vm_host("c/pc/198.51.100.7", "198.51.100.7", None),
            host("lab/192.0.2.9", "192.0.2.9"),
        ]);
        let mut settings = gmp::Settings {
            reachable: vec!["198.51.100.0/24".parse().unwrap()],
            ..gmp::Settings::default()
        };
        let asked = targets(&hosts, &Default::default(), &settings);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(asked.hosts, [(ip("198.51.100.7"), vec![22])]);
        assert_eq!(
            asked.ids,
            BTreeMap::from([(ip("198.51.100.7"), vec!["c/pc/198.51.100.7".to_string()])])
        );
        assert_eq!((asked.namespaced, asked.unreachable), (2, 1));

        // Where gvmd does reach the tenant networks, both VMs are asked about under their shared
        // address once, and a result for it is theirs — not the first host found with it.
        settings.namespaced_hosts = true;
        settings.reachable.clear();
        let asked = targets(&hosts, &Default::default(), &settings);
        assert_eq!(asked.hosts.len(), 3, "{:?}", asked.hosts);
        assert_eq!(
            asked.ids.get(&ip("10.0.0.5")).unwrap(),
            &["a/pa/10.0.0.5", "b/pb/10.0.0.5"]
        );
        assert_eq!(asked.ids.get(&ip("192.0.2.9")).unwrap(), &["lab/192.0.2.9"]);

        // A report about 10.0.0.5 from a run that asked only about the floating IP belongs to
        // nobody; one that asked about both VMs belongs to both.
        let report = BTreeMap::from([(ip("10.0.0.5"), "results"), (ip("198.51.100.7"), "r2")]);
        let only_floating =
            BTreeMap::from([(ip("198.51.100.7"), vec!["c/pc/198.51.100.7".to_string()])]);
        let got: Vec<&str> = owners(&report, &only_floating, &hosts)
            .map(|(h, _)| h.id.as_str())
            .collect();
        assert_eq!(got, ["c/pc/198.51.100.7"]);
        let got: Vec<(&str, &str)> = owners(&report, &asked.ids, &hosts)
            .map(|(h, r)| (h.id.as_str(), *r))
            .collect();
        assert_eq!(
            got,
            [
                ("a/pa/10.0.0.5", "results"),
                ("b/pb/10.0.0.5", "results"),
                ("c/pc/198.51.100.7", "r2")
            ]
        );
    }

    #[test]
    fn feed_versions_are_utc_timestamps() {
        assert_eq!(feed_time("202501010000"), Some(1_735_689_600.0));
        assert_eq!(feed_time("20250101"), Some(1_735_689_600.0));
        assert_eq!(feed_time(""), None);
        assert_eq!(feed_time("2025-01"), None);
    }
}
