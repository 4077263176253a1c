//! Judge stage: what it means. Pure functions from an observation, the previous state and the policy
//! to the new host state (every open port with its verdict and deciding rule) and the history events
//! between the two (port opened/closed, host appeared/disappeared, verdict changed). A host that
//! answers nothing keeps its last ports (it is unreachable, not closed); a host that answers every
//! TCP port is one record, event and finding ([`tarpit`]). [`findings`] turns the judged states
//! into findings with a lifecycle.

pub mod exceptions;
pub mod exposure;
pub mod findings;
pub mod policy;
pub mod tarpit;

pub use policy::{Policy, Rule};

use crate::model::{
    Event, EventKind, Exposure, HostObservation, HostState, PortFinding, Protocol, Target,
    UnixSeconds, VmTarget, VulnSource, Vulnerability,
};

/// The judged result for one host.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    /// The host's new state; `None` for a host never seen with an open port (nothing to keep).
    pub state: Option<HostState>,
    pub events: Vec<Event>,
}

fn event(
    kind: EventKind,
    host: &HostState,
    time: UnixSeconds,
    scan_id: u64,
    port: Option<&PortFinding>,
) -> Event {
    Event {
        time,
        kind,
        host: host.id.clone(),
        address: host.address,
        group: host.group.clone(),
        port: port.map(|p| p.port),
        protocol: port.map(|p| p.protocol),
        verdict: port.map(|p| p.verdict),
        rule: port.map(|p| p.rule.clone()),
        service: port.and_then(|p| p.service.clone()),
        vuln: None,
        scan_id,
    }
}

/// Judge one host's observation against the policy and its previous state.
pub fn judge_host(
    target: &Target,
    obs: &HostObservation,
    prev: Option<&HostState>,
    policy: &Policy,
    scan_id: u64,
    now: UnixSeconds,
) -> Judged {
    let up = obs.is_up();
    // A host enters the state with its first open port (resets alone say nothing worth keeping:
    // a firewall or loopback answers for every address); once known it is followed until removed.
    if obs.open.is_empty()
        && obs.udp_open.is_empty()
        && obs.udp_replies.is_empty()
        && prev.is_none()
    {
        return Judged {
            state: None,
            events: Vec::new(),
        };
    }
    // A host that answers everything keeps counts, not one record per TCP port.
    let answers_everything = tarpit::assess(obs, prev, now);
    let tcp_open: &[u16] = match answers_everything {
        Some(_) => &[],
        None => &obs.open,
    };
    let tcp = tcp_open.iter().map(|&p| (Protocol::Tcp, p));
    // UDP: what nmap -sU found, and what the native probes found (each port once).
    let mut udp_ports: Vec<u16> = obs
        .udp_open
        .iter()
        .copied()
        .chain(obs.udp_replies.iter().map(|(p, ..)| *p))
        .collect();
    udp_ports.sort_unstable();
    udp_ports.dedup();
    let udp = udp_ports.into_iter().map(|p| (Protocol::Udp, p));
    let ports: Vec<PortFinding> = tcp
        .chain(udp)
        .map(|(protocol, port)| {
            let (verdict, rule) = policy.verdict_for(&subject(target), protocol, port);
            let before = prev.and_then(|p| {
                p.ports
                    .iter()
                    .find(|f| f.port == port && f.protocol == protocol)
            });
            // nmap's answer when it covered the host this cycle; else what was known before.
            let service = if obs.services_known {
                obs.services
                    .iter()
                    .find(|(pr, po, _)| *pr == protocol && *po == port)
                    .map(|(_, _, s)| s.clone())
            } else {
                before.and_then(|f| f.service.clone())
            };
            // The native UDP probe's answer; else what it said before (nmap found the port).
            let reply = (protocol == Protocol::Udp)
                .then(|| obs.udp_replies.iter().find(|(p, ..)| *p == port))
                .flatten();
            let (amplification, udp) = match reply {
                Some((_, r, a)) => (Some(*a), Some(r.clone())),
                None => before.map_or((None, None), |f| (f.amplification, f.udp.clone())),
            };
            // nmap names the service when it ran; the protocol that answered otherwise.
            let service = service.or_else(|| {
                udp.as_ref().map(|r| crate::model::ServiceInfo {
                    name: Some(r.service.clone()),
                    method: Some("stinger-udp".into()),
                    ..crate::model::ServiceInfo::default()
                })
            });
            // Vulnerabilities follow the same rule, but only nmap's own: Greenbone's stay until
            // the next Greenbone report. Each keeps the time it was first seen.
            let vulns = if obs.services_known {
                let mut v: Vec<Vulnerability> = before.map_or(Vec::new(), |f| {
                    f.vulns
                        .iter()
                        .filter(|v| v.source != VulnSource::NmapVulners)
                        .cloned()
                        .collect()
                });
                v.extend(
                    obs.vulns
                        .iter()
                        .filter(|(pr, po, _)| *pr == protocol && *po == port)
                        .map(|(_, _, v)| Vulnerability {
                            first_seen: first_seen(before.map_or(&[], |f| &f.vulns), v, now),
                            last_seen: now,
                            ..v.clone()
                        }),
                );
                v
            } else {
                before.map_or(Vec::new(), |f| f.vulns.clone())
            };
            PortFinding {
                port,
                protocol,
                verdict,
                rule: rule.to_string(),
                since: before.map_or(now, |f| f.since),
                service,
                vulns,
                world: None,
                amplification,
                udp,
            }
        })
        .collect();
    // A UDP port seen open before and not seen now: closed when the native probe got an ICMP port
    // unreachable; kept open while the native probe gets no answer (silence is not "closed");
    // otherwise (a port only nmap probes) kept until nmap covers the host again.
    let carried_udp: Vec<PortFinding> = prev.map_or(Vec::new(), |p| {
        p.ports
            .iter()
            .filter(|f| f.protocol == Protocol::Udp && up)
            .filter(|f| {
                !ports
                    .iter()
                    .any(|n| n.protocol == Protocol::Udp && n.port == f.port)
            })
            .filter(|f| {
                if obs.udp_closed.contains(&f.port) {
                    false
                } else if obs.udp_unknown.contains(&f.port) {
                    true
                } else {
                    !obs.services_known
                }
            })
            .cloned()
            .collect()
    });
    let mut ports = ports;
    ports.extend(carried_udp);
    // A host that answered nothing at all is unreachable, not a host whose ports all closed: it
    // keeps the ports it had (their findings go stale), and nothing is reported closed.
    if !up {
        if let Some(p) = prev {
            ports = p.ports.clone();
        }
    }
    let exposure = target
        .vm
        .as_ref()
        .map(|vm| assess(vm, target.address, &mut ports));
    let (udp_open_filtered, os) = if obs.services_known {
        (obs.udp_open_filtered.clone(), obs.os.clone())
    } else {
        prev.map_or((Vec::new(), Vec::new()), |p| {
            (p.udp_open_filtered.clone(), p.os.clone())
        })
    };
    let state = HostState {
        id: target.id.clone(),
        address: target.address,
        group: target.group.clone(),
        up,
        ports,
        first_seen: prev.map_or(now, |p| p.first_seen),
        last_seen: if up {
            now
        } else {
            prev.map_or(now, |p| p.last_seen)
        },
        last_scan: now,
        last_scan_id: scan_id,
        udp_open_filtered,
        os,
        vulns: prev.map_or(Vec::new(), |p| p.vulns.clone()),
        vm: target.vm.as_ref().map(|v| v.link.clone()),
        exposure,
        answers_everything,
    };
    let events = diff(prev, &state, scan_id, now);
    Judged {
        state: Some(state),
        events,
    }
}

/// Who the policy judges: the address and group, plus the project and metadata of a cloud VM.
fn subject(target: &Target) -> policy::Subject<'_> {
    match &target.vm {
        None => policy::Subject::address(target.address, &target.group),
        Some(vm) => policy::Subject {
            address: target.address,
            group: &target.group,
            project_id: Some(&vm.link.project_id),
            project_name: vm.link.project_name.as_deref(),
            metadata: Some(&vm.metadata),
        },
    }
}

/// The security groups' say on a VM's open ports: marks each port the world can reach with the
/// rule that allows it, and returns the whole assessment.
fn assess(vm: &VmTarget, address: std::net::IpAddr, ports: &mut [PortFinding]) -> Exposure {
    let groups: Vec<&crate::model::SecurityGroup> =
        vm.security_groups.iter().map(|g| &**g).collect();
    let open: Vec<(Protocol, u16)> = ports.iter().map(|p| (p.protocol, p.port)).collect();
    let e = exposure::assess(
        &groups,
        vm.port_security_enabled,
        exposure::IpFamily::of(address),
        vm.scanner_source,
        &open,
    );
    for p in ports.iter_mut() {
        p.world = e
            .ports
            .iter()
            .find(|x| x.protocol == p.protocol && x.port == p.port)
            .and_then(|x| x.world.clone());
    }
    e
}

/// When a vulnerability was first seen: as before if it was already known, else now.
fn first_seen(before: &[Vulnerability], v: &Vulnerability, now: UnixSeconds) -> UnixSeconds {
    before
        .iter()
        .find(|o| o.id == v.id && o.source == v.source)
        .map_or(now, |o| o.first_seen)
}

pub use crate::model::ReportedVuln;

/// Apply a complete Greenbone report for one host: its Greenbone findings are replaced by the report's
/// (findings on ports that are not open now are kept host-wide); nmap's stay. Found and remediated
/// vulnerabilities become events.
pub fn apply_report(
    prev: &HostState,
    findings: &[ReportedVuln],
    scan_id: u64,
    now: UnixSeconds,
) -> Judged {
    let gb = |v: &&Vulnerability| v.source == VulnSource::Greenbone;
    let mut state = prev.clone();
    for p in &mut state.ports {
        let before: Vec<Vulnerability> = p.vulns.iter().filter(gb).cloned().collect();
        p.vulns.retain(|v| v.source != VulnSource::Greenbone);
        for (at, v) in findings {
            if *at == Some((p.protocol, p.port)) && !p.vulns.iter().any(|o| o.id == v.id) {
                p.vulns.push(Vulnerability {
                    first_seen: first_seen(&before, v, now),
                    last_seen: now,
                    ..v.clone()
                });
            }
        }
    }
    let before: Vec<Vulnerability> = prev.vulns.iter().filter(gb).cloned().collect();
    state.vulns.retain(|v| v.source != VulnSource::Greenbone);
    for (at, v) in findings {
        let on_open_port =
            at.is_some_and(|(pr, po)| state.ports.iter().any(|p| p.protocol == pr && p.port == po));
        if !on_open_port && !state.vulns.iter().any(|o| o.id == v.id) {
            state.vulns.push(Vulnerability {
                first_seen: first_seen(&before, v, now),
                last_seen: now,
                ..v.clone()
            });
        }
    }
    let mut events = diff(Some(prev), &state, scan_id, now);
    for v in &state.vulns {
        if !prev.vulns.iter().any(|o| o.id == v.id) {
            let mut e = event(EventKind::VulnFound, &state, now, scan_id, None);
            e.vuln = Some(v.clone());
            events.push(e);
        }
    }
    for o in &prev.vulns {
        if !state.vulns.iter().any(|v| v.id == o.id) {
            let mut e = event(EventKind::VulnRemediated, &state, now, scan_id, None);
            e.vuln = Some(o.clone());
            events.push(e);
        }
    }
    Judged {
        state: Some(state),
        events,
    }
}

/// Events between a host's previous and new state.
pub fn diff(
    prev: Option<&HostState>,
    new: &HostState,
    scan_id: u64,
    now: UnixSeconds,
) -> Vec<Event> {
    let mut events = Vec::new();
    let was_up = prev.is_some_and(|p| p.up);
    if new.up && !was_up {
        events.push(event(EventKind::HostAppeared, new, now, scan_id, None));
    }
    events.extend(tarpit::event(prev, new, scan_id, now));
    let old_ports: &[PortFinding] = prev.map_or(&[], |p| &p.ports);
    for p in &new.ports {
        // Vulnerabilities that appeared, and those gone from a port that is still open.
        let before: &[Vulnerability] = old_ports
            .iter()
            .find(|o| o.port == p.port && o.protocol == p.protocol)
            .map_or(&[], |o| &o.vulns);
        for v in &p.vulns {
            if !before.iter().any(|b| b.id == v.id) {
                let mut e = event(EventKind::VulnFound, new, now, scan_id, Some(p));
                e.vuln = Some(v.clone());
                events.push(e);
            }
        }
        for b in before {
            if !p.vulns.iter().any(|v| v.id == b.id) {
                let mut e = event(EventKind::VulnRemediated, new, now, scan_id, Some(p));
                e.vuln = Some(b.clone());
                events.push(e);
            }
        }
        match old_ports
            .iter()
            .find(|o| o.port == p.port && o.protocol == p.protocol)
        {
            None => events.push(event(EventKind::PortOpened, new, now, scan_id, Some(p))),
            Some(o) => {
                if o.verdict != p.verdict || o.rule != p.rule {
                    events.push(event(EventKind::VerdictChanged, new, now, scan_id, Some(p)));
                }
                if let (Some(a), Some(b)) = (&o.service, &p.service) {
                    if (&a.name, &a.product, &a.version) != (&b.name, &b.product, &b.version) {
                        events.push(event(EventKind::ServiceChanged, new, now, scan_id, Some(p)));
                    }
                }
            }
        }
    }
    for o in old_ports {
        if !tarpit::supersedes(new, o)
            && !new
                .ports
                .iter()
                .any(|p| p.port == o.port && p.protocol == o.protocol)
        {
            events.push(event(EventKind::PortClosed, new, now, scan_id, Some(o)));
        }
    }
    if was_up && !new.up {
        events.push(event(EventKind::HostDisappeared, new, now, scan_id, None));
    }
    events
}

/// Events for a host that left the inventory: its ports close and it disappears.
pub fn removed(prev: &HostState, scan_id: u64, now: UnixSeconds) -> Vec<Event> {
    let gone = HostState {
        up: false,
        ports: Vec::new(),
        ..prev.clone()
    };
    diff(Some(prev), &gone, scan_id, now)
}

/// Re-judge a stored state under a new policy (after a config reload): same ports, new verdicts.
/// `metadata` is the VM's, for a cloud VM's address.
pub fn rejudge(
    prev: &HostState,
    policy: &Policy,
    metadata: Option<&crate::model::Metadata>,
    now: UnixSeconds,
) -> Judged {
    let mut state = prev.clone();
    let subject = policy::Subject {
        address: state.address,
        group: &state.group,
        project_id: state.vm.as_ref().map(|v| v.project_id.as_str()),
        project_name: state.vm.as_ref().and_then(|v| v.project_name.as_deref()),
        metadata,
    };
    for p in &mut state.ports {
        let (verdict, rule) = policy.verdict_for(&subject, p.protocol, p.port);
        p.verdict = verdict;
        p.rule = rule.to_string();
    }
    let events = diff(Some(prev), &state, prev.last_scan_id, now);
    Judged {
        state: Some(state),
        events,
    }
}

#[cfg(test)]
mod tests;
