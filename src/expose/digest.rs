//! The digest: what the e-mail says. Built from the in-memory view and the history events since the
//! last digest: the hosts with unexpected open ports, named by VM, project and user as the old nightly
//! script mailed them; the hosts with serious vulnerabilities; the changes. Rendered as a subject, a
//! text body and a JSON attachment. Pure: no I/O, no clock.

use crate::model::{Event, HostState, PortFinding, UnixSeconds, Verdict};
use crate::state::View;
use crate::store::EventQuery;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Most history events a digest reads (it says when there were more).
const MAX_CHANGES: usize = 10_000;

/// What a digest covers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scope {
    /// Start of the changes window (the last digest sent).
    pub since: UnixSeconds,
    pub now: UnixSeconds,
    /// Hosts with a vulnerability at least this severe are listed.
    pub min_cvss: f64,
}

/// The whole digest, as attached in JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Digest {
    pub generated: UnixSeconds,
    pub since: UnixSeconds,
    pub min_cvss: f64,
    pub summary: Summary,
    /// Hosts with unexpected open ports (only those ports listed).
    pub unexpected: Vec<HostEntry>,
    /// Hosts with a vulnerability of at least `min_cvss` (only the ports carrying one listed).
    pub vulnerable: Vec<HostEntry>,
    /// History events in the window, oldest first.
    pub changes: Vec<Event>,
    /// More events happened than were read; `summary.changes` counts only those read.
    pub changes_truncated: bool,
}

/// Counts over the whole state.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub hosts: usize,
    pub hosts_up: usize,
    pub open_ports: usize,
    pub unexpected_ports: usize,
    pub hosts_with_unexpected_ports: usize,
    pub vulnerable_hosts: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_cvss: Option<f64>,
    pub vms: usize,
    /// Changes in the window, by event kind.
    pub changes: BTreeMap<&'static str, usize>,
}

/// One host, with the VM behind it when the inventory knows one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostEntry {
    pub id: String,
    pub address: std::net::IpAddr,
    pub group: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vm: Option<VmNames>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_cvss: Option<f64>,
    pub ports: Vec<PortFinding>,
    /// Ids of vulnerabilities not tied to a port (Greenbone's host-wide results) at or above the bar.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub host_vulns: Vec<String>,
}

/// Who a VM belongs to: names where Keystone gave them, else ids.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VmNames {
    pub id: String,
    pub name: String,
    pub project: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
}

impl Scope {
    /// The store query for the window's changes: one more than a digest keeps, to tell it was cut.
    pub fn changes_query(&self) -> EventQuery {
        EventQuery {
            since: Some(self.since),
            until: Some(self.now),
            limit: MAX_CHANGES + 1,
            ..Default::default()
        }
    }
}

impl Digest {
    /// Build from the view and the store's answer to [`Scope::changes_query`].
    pub fn from_window(view: &View, events: Vec<(Vec<u8>, Event)>, scope: Scope) -> Digest {
        let truncated = events.len() > MAX_CHANGES;
        let changes = events
            .into_iter()
            .take(MAX_CHANGES)
            .map(|(_, e)| e)
            .collect();
        Digest::build(view, changes, truncated, scope)
    }

    /// Build from the view and the events of the window (`truncated`: more exist than were read).
    pub fn build(view: &View, changes: Vec<Event>, truncated: bool, scope: Scope) -> Digest {
        let mut s = Summary {
            hosts: view.hosts.len(),
            vms: view.vms.len(),
            ..Default::default()
        };
        let mut unexpected = Vec::new();
        let mut vulnerable = Vec::new();
        for h in view.hosts.values() {
            s.hosts_up += usize::from(h.up);
            s.open_ports += h.ports.len();
            let n = h.unexpected();
            s.unexpected_ports += n;
            let max = h.max_cvss();
            s.max_cvss = match (s.max_cvss, max) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            if n > 0 {
                let ports = h
                    .ports
                    .iter()
                    .filter(|p| p.verdict == Verdict::Unexpected)
                    .cloned()
                    .collect();
                unexpected.push(entry(view, h, ports, Vec::new()));
            }
            if max.is_some_and(|m| m >= scope.min_cvss) {
                let serious = |c: Option<f64>| c.is_some_and(|c| c >= scope.min_cvss);
                let ports = h
                    .ports
                    .iter()
                    .filter(|p| serious(p.max_cvss()))
                    .cloned()
                    .collect();
                let host_vulns = h
                    .vulns
                    .iter()
                    .filter(|v| serious(v.cvss))
                    .map(|v| v.id.clone())
                    .collect();
                vulnerable.push(entry(view, h, ports, host_vulns));
            }
        }
        s.hosts_with_unexpected_ports = unexpected.len();
        s.vulnerable_hosts = vulnerable.len();
        for e in &changes {
            *s.changes.entry(e.kind.as_str()).or_default() += 1;
        }
        // Most unexpected ports first; the most severe first.
        unexpected.sort_by(|a, b| b.ports.len().cmp(&a.ports.len()).then(a.id.cmp(&b.id)));
        vulnerable.sort_by(|a, b| {
            b.max_cvss
                .unwrap_or(0.0)
                .total_cmp(&a.max_cvss.unwrap_or(0.0))
                .then(a.id.cmp(&b.id))
        });
        Digest {
            generated: scope.now,
            since: scope.since,
            min_cvss: scope.min_cvss,
            summary: s,
            unexpected,
            vulnerable,
            changes,
            changes_truncated: truncated,
        }
    }

    /// Nothing worth a mail: no unexpected port, no vulnerable host, no change.
    pub fn is_quiet(&self) -> bool {
        self.unexpected.is_empty() && self.vulnerable.is_empty() && self.changes.is_empty()
    }

    /// The subject line (after the configured prefix).
    pub fn subject(&self) -> String {
        let s = &self.summary;
        let mut parts = Vec::new();
        if s.unexpected_ports > 0 {
            parts.push(format!(
                "{} on {}",
                plural(s.unexpected_ports, "unexpected open port"),
                plural(s.hosts_with_unexpected_ports, "host")
            ));
        }
        if s.vulnerable_hosts > 0 {
            parts.push(format!(
                "{} with CVSS {:.1}+",
                plural(s.vulnerable_hosts, "host"),
                self.min_cvss
            ));
        }
        let changes = self.changes.len();
        if changes > 0 {
            parts.push(if self.changes_truncated {
                format!("{changes}+ changes")
            } else {
                plural(changes, "change")
            });
        }
        if parts.is_empty() {
            "nothing unexpected, no changes".to_string()
        } else {
            parts.join(", ")
        }
    }

    /// The text body: summary, then each section, `max_lines` entries at most per section.
    pub fn text(&self, max_lines: usize) -> String {
        let s = &self.summary;
        let mut t = String::new();
        let _ = writeln!(
            t,
            "Stinger digest of {}, covering changes since {}.\n",
            time(self.generated),
            time(self.since)
        );
        let _ = writeln!(
            t,
            "{} scanned ({} up), {}; {} on {}.",
            plural(s.hosts, "host"),
            s.hosts_up,
            plural(s.open_ports, "open port"),
            plural(s.unexpected_ports, "unexpected port"),
            plural(s.hosts_with_unexpected_ports, "host")
        );
        let _ = write!(
            t,
            "{} with a vulnerability of CVSS {:.1} or more",
            plural(s.vulnerable_hosts, "host"),
            self.min_cvss
        );
        match s.max_cvss {
            Some(m) => {
                let _ = writeln!(t, " (highest CVSS anywhere: {m:.1}).");
            }
            None => t.push_str(".\n"),
        }
        if s.vms > 0 {
            let _ = writeln!(t, "{} in the cloud inventory.", plural(s.vms, "VM"));
        }
        let _ = writeln!(t, "{}.", plural(self.changes.len(), "change"));

        if !self.unexpected.is_empty() {
            t.push_str("\nUNEXPECTED OPEN PORTS\n");
            for h in self.unexpected.iter().take(max_lines) {
                let _ = writeln!(t, "{}", host_line(h));
                for p in &h.ports {
                    let _ = writeln!(t, "    {}", port_line(p));
                }
            }
            more(&mut t, self.unexpected.len(), max_lines, "hosts");
        }
        if !self.vulnerable.is_empty() {
            let _ = writeln!(t, "\nVULNERABILITIES (CVSS {:.1} OR MORE)", self.min_cvss);
            for h in self.vulnerable.iter().take(max_lines) {
                let _ = writeln!(
                    t,
                    "{}  max CVSS {:.1}",
                    host_line(h),
                    h.max_cvss.unwrap_or(0.0)
                );
                for p in &h.ports {
                    let mut ids: Vec<_> = p
                        .vulns
                        .iter()
                        .filter(|v| v.cvss.is_some_and(|c| c >= self.min_cvss))
                        .collect();
                    ids.sort_by(|a, b| b.cvss.unwrap_or(0.0).total_cmp(&a.cvss.unwrap_or(0.0)));
                    let list: Vec<String> = ids
                        .iter()
                        .take(5)
                        .map(|v| format!("{} ({:.1})", v.id, v.cvss.unwrap_or(0.0)))
                        .collect();
                    let rest = ids.len().saturating_sub(5);
                    let rest = if rest > 0 {
                        format!(" and {rest} more")
                    } else {
                        String::new()
                    };
                    let _ = writeln!(
                        t,
                        "    {}/{}: {}{rest}",
                        p.protocol,
                        p.port,
                        list.join(", ")
                    );
                }
                if !h.host_vulns.is_empty() {
                    let _ = writeln!(t, "    host: {}", h.host_vulns.join(", "));
                }
            }
            more(&mut t, self.vulnerable.len(), max_lines, "hosts");
        }
        if !self.changes.is_empty() {
            t.push_str("\nCHANGES\n");
            for e in self.changes.iter().take(max_lines) {
                let _ = writeln!(t, "{}", change_line(e));
            }
            more(&mut t, self.changes.len(), max_lines, "changes");
            if self.changes_truncated {
                t.push_str("(more changes happened than a digest reads; ask /api/v1/changes)\n");
            }
        }
        t.push_str("\nThe whole digest is attached as JSON.\n");
        t
    }

    /// The attachment's file name: `stinger-digest-<date>.json`.
    pub fn attachment_name(&self) -> String {
        let date = time(self.generated);
        format!("stinger-digest-{}.json", date.get(..10).unwrap_or("now"))
    }

    /// The JSON attachment.
    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| format!("{{\"error\": \"cannot encode the digest: {e}\"}}"))
    }
}

fn entry(
    view: &View,
    h: &HostState,
    ports: Vec<PortFinding>,
    host_vulns: Vec<String>,
) -> HostEntry {
    let vm = h.vm.as_ref().map(|link| {
        let user = view
            .vms
            .get(&link.vm_id)
            .map(|vm| vm.user_name.clone().unwrap_or_else(|| vm.user_id.clone()));
        VmNames {
            id: link.vm_id.clone(),
            name: link.vm_name.clone(),
            project: link
                .project_name
                .clone()
                .unwrap_or_else(|| link.project_id.clone()),
            user,
        }
    });
    HostEntry {
        id: h.id.clone(),
        address: h.address,
        group: h.group.clone(),
        vm,
        max_cvss: h.max_cvss(),
        ports,
        host_vulns,
    }
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// `2026-11-24 06:00:00 UTC`.
fn time(t: UnixSeconds) -> String {
    let st = std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(t.max(0.0));
    humantime::format_rfc3339_seconds(st)
        .to_string()
        .replace('T', " ")
        .replace('Z', " UTC")
}

fn more(t: &mut String, n: usize, max: usize, what: &str) {
    if n > max {
        let _ = writeln!(t, "(and {} more {what}, in the attachment)", n - max);
    }
}

/// `10.0.0.5  VM web-1, project acme, user alice  (group cloud)`.
fn host_line(h: &HostEntry) -> String {
    match &h.vm {
        Some(vm) => format!(
            "{}  VM {}, project {}, user {}  ({})",
            h.address,
            vm.name,
            vm.project,
            vm.user.as_deref().unwrap_or("?"),
            h.group
        ),
        None => format!("{}  ({})", h.address, h.group),
    }
}

/// `tcp/8080  http-proxy Squid 5.7  rule default, open since …, world-open by group web rule r1`.
fn port_line(p: &PortFinding) -> String {
    let service = p
        .service
        .as_ref()
        .map(|s| s.describe())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unidentified".into());
    let mut line = format!(
        "{}/{}  {service}  rule {}, open since {}",
        p.protocol,
        p.port,
        p.rule,
        time(p.since)
    );
    if let Some(w) = &p.world {
        if w.group_name.is_empty() {
            line.push_str(", reachable from anywhere (port security disabled)");
        } else {
            let _ = write!(
                line,
                ", open to the world by security group {} rule {}",
                w.group_name, w.rule_id
            );
        }
    }
    line
}

/// `2026-11-23 07:12:00 UTC  port_opened  10.0.0.5 tcp/8080 unexpected (default)`.
fn change_line(e: &Event) -> String {
    let mut line = format!("{}  {}  {}", time(e.time), e.kind.as_str(), e.address);
    if let (Some(proto), Some(port)) = (e.protocol, e.port) {
        let _ = write!(line, " {proto}/{port}");
    }
    if let Some(v) = e.verdict {
        let verdict = match v {
            Verdict::Expected => "expected",
            Verdict::Unexpected => "unexpected",
        };
        let _ = write!(line, " {verdict}");
        if let Some(r) = &e.rule {
            let _ = write!(line, " ({r})");
        }
    }
    if let Some(v) = &e.vuln {
        let _ = write!(line, " {}", v.id);
        if let Some(c) = v.cvss {
            let _ = write!(line, " CVSS {c:.1}");
        }
    }
    if let Some(s) = e
        .service
        .as_ref()
        .map(|s| s.describe())
        .filter(|s| !s.is_empty())
    {
        let _ = write!(line, " [{s}]");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{
        AddressKind, EventKind, Protocol, ServiceInfo, Vm, VmLink, VulnSource, Vulnerability,
    };
    use std::sync::Arc;

    fn port(port: u16, verdict: Verdict, cvss: &[(&str, f64)]) -> PortFinding {
        PortFinding {
            port,
            protocol: Protocol::Tcp,
            verdict,
            rule: if verdict == Verdict::Expected {
                "global"
            } else {
                "default"
            }
            .into(),
            since: 1_700_000_000.0,
            service: Some(ServiceInfo {
                name: Some("http".into()),
                product: Some("nginx".into()),
                version: Some("1.22.1".into()),
                ..Default::default()
            }),
            vulns: cvss
                .iter()
                .map(|(id, c)| Vulnerability {
                    id: id.to_string(),
                    cvss: Some(*c),
                    source: VulnSource::Greenbone,
                    exploit: false,
                    name: None,
                    first_seen: 1.0,
                    last_seen: 2.0,
                })
                .collect(),
            world: None,
            amplification: None,
            udp: None,
        }
    }

    fn host(id: &str, ports: Vec<PortFinding>) -> HostState {
        HostState {
            id: id.into(),
            address: "10.0.0.1".parse().unwrap(),
            group: "lab".into(),
            up: true,
            ports,
            first_seen: 1.0,
            last_seen: 2.0,
            last_scan: 2.0,
            last_scan_id: 1,
            udp_open_filtered: Vec::new(),
            os: Vec::new(),
            vulns: Vec::new(),
            vm: None,
            exposure: None,
        }
    }

    fn view() -> View {
        let mut v = View::default();
        let mut cloud = host(
            "i-1/p-1/10.0.0.2",
            vec![
                port(22, Verdict::Expected, &[("CVE-2023-38408", 9.8)]),
                port(8080, Verdict::Unexpected, &[]),
                port(9000, Verdict::Unexpected, &[("CVE-2020-1", 5.0)]),
            ],
        );
        cloud.address = "10.0.0.2".parse().unwrap();
        cloud.group = "cloud".into();
        cloud.vm = Some(VmLink {
            vm_id: "i-1".into(),
            vm_name: "web-1".into(),
            project_id: "p-acme".into(),
            project_name: Some("acme".into()),
            port_id: Some("p-1".into()),
            kind: AddressKind::Floating,
            network: "public".into(),
            namespace: None,
        });
        v.vms.insert(
            "i-1".into(),
            Arc::new(Vm {
                id: "i-1".into(),
                cloud: "cloud".into(),
                name: "web-1".into(),
                status: "ACTIVE".into(),
                project_id: "p-acme".into(),
                project_name: Some("acme".into()),
                user_id: "u-1".into(),
                user_name: Some("alice".into()),
                metadata: Default::default(),
                flavor: None,
                created: None,
                updated: None,
                addresses: Vec::new(),
                diagnostics: None,
                diagnostics_error: None,
                first_seen: 1.0,
                last_seen: 2.0,
            }),
        );
        v.hosts.insert(cloud.id.clone(), cloud);
        let plain = host("10.0.0.1", vec![port(22, Verdict::Expected, &[])]);
        v.hosts.insert(plain.id.clone(), plain);
        let mut down = host("10.0.0.3", Vec::new());
        down.up = false;
        v.hosts.insert(down.id.clone(), down);
        v
    }

    fn event(kind: EventKind, port: Option<u16>) -> Event {
        Event {
            time: 1_700_000_100.0,
            kind,
            host: "i-1/p-1/10.0.0.2".into(),
            address: "10.0.0.2".parse().unwrap(),
            group: "cloud".into(),
            port,
            protocol: port.map(|_| Protocol::Tcp),
            verdict: port.map(|_| Verdict::Unexpected),
            rule: port.map(|_| "default".to_string()),
            service: None,
            vuln: None,
            scan_id: 7,
        }
    }

    const SCOPE: Scope = Scope {
        since: 1_700_000_000.0,
        now: 1_700_086_400.0,
        min_cvss: 7.0,
    };

    #[test]
    fn counts_names_and_sections() {
        let changes = vec![
            event(EventKind::PortOpened, Some(8080)),
            event(EventKind::PortOpened, Some(9000)),
            event(EventKind::VmAppeared, None),
        ];
        let d = Digest::build(&view(), changes, false, SCOPE);
        let s = &d.summary;
        assert_eq!((s.hosts, s.hosts_up, s.open_ports), (3, 2, 4));
        assert_eq!((s.unexpected_ports, s.hosts_with_unexpected_ports), (2, 1));
        assert_eq!((s.vulnerable_hosts, s.max_cvss, s.vms), (1, Some(9.8), 1));
        assert_eq!(s.changes.get("port_opened"), Some(&2));
        assert_eq!(s.changes.get("vm_appeared"), Some(&1));

        let u = &d.unexpected[0];
        let ports: Vec<u16> = u.ports.iter().map(|p| p.port).collect();
        assert_eq!(ports, [8080, 9000], "only the unexpected ports");
        let vm = u.vm.as_ref().expect("VM names");
        assert_eq!(
            (vm.name.as_str(), vm.project.as_str(), vm.user.as_deref()),
            ("web-1", "acme", Some("alice"))
        );
        let v = &d.vulnerable[0];
        let ports: Vec<u16> = v.ports.iter().map(|p| p.port).collect();
        assert_eq!(ports, [22], "only ports with a CVSS at or above the bar");
        assert!(!d.is_quiet());
        assert_eq!(
            d.subject(),
            "2 unexpected open ports on 1 host, 1 host with CVSS 7.0+, 3 changes"
        );
    }

    #[test]
    fn the_text_names_hosts_ports_and_changes_and_caps_sections() {
        let changes: Vec<Event> = (0..5)
            .map(|i| event(EventKind::PortOpened, Some(8000 + i)))
            .collect();
        let d = Digest::build(&view(), changes, true, SCOPE);
        let t = d.text(3);
        assert!(
            t.contains("10.0.0.2  VM web-1, project acme, user alice  (cloud)"),
            "{t}"
        );
        assert!(
            t.contains("tcp/8080  http nginx 1.22.1  rule default"),
            "{t}"
        );
        assert!(t.contains("tcp/22: CVE-2023-38408 (9.8)"), "{t}");
        assert!(!t.contains("CVE-2020-1 "), "below the bar: {t}");
        assert!(
            t.contains("port_opened  10.0.0.2 tcp/8002 unexpected (default)"),
            "{t}"
        );
        assert!(!t.contains("tcp/8003 unexpected"), "capped at 3 lines: {t}");
        assert!(t.contains("(and 2 more changes, in the attachment)"), "{t}");
        assert!(
            t.contains("more changes happened than a digest reads"),
            "{t}"
        );
        assert!(t.contains("since 2023-11-14 22:13:20 UTC"), "{t}");
        assert!(d.subject().ends_with("5+ changes"), "{}", d.subject());
    }

    #[test]
    fn quiet_when_nothing_is_unexpected_vulnerable_or_changed() {
        let mut v = View::default();
        let h = host(
            "10.0.0.1",
            vec![port(22, Verdict::Expected, &[("CVE-1", 4.0)])],
        );
        v.hosts.insert(h.id.clone(), h);
        let d = Digest::build(&v, Vec::new(), false, SCOPE);
        assert!(d.is_quiet());
        assert_eq!(d.subject(), "nothing unexpected, no changes");
        let json: serde_json::Value = serde_json::from_str(&d.json()).unwrap();
        assert_eq!(json["summary"]["hosts"], 1);
        assert_eq!(json["summary"]["max_cvss"], 4.0);
        assert_eq!(json["unexpected"].as_array().map(Vec::len), Some(0));
    }
}
