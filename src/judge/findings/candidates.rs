//! What a host's judged state says should be a finding: an unexpected port, a world-open or
//! unenforced security group, an amplifier, a vulnerability, a host that answers every port — each
//! once, with its severity, deciding rule and evidence.

use super::Settings;
use crate::model::{
    finding_key, FindingKind, HostState, PortFinding, Protocol, Severity, Verdict, VulnSource,
};

/// What a host's state says should be a finding now.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub kind: FindingKind,
    pub protocol: Option<Protocol>,
    pub port: Option<u16>,
    pub cve: Option<String>,
    pub severity: Severity,
    pub rule: String,
    pub evidence: String,
}

impl Candidate {
    pub(super) fn key(&self) -> String {
        finding_key(self.protocol, self.port, self.cve.as_deref())
    }
}

fn port_words(p: &PortFinding) -> String {
    let mut s = format!("{}/{} open", p.protocol, p.port);
    if let Some(svc) = p.service.as_ref().map(|s| s.describe()) {
        if !svc.is_empty() {
            s.push_str(&format!(" ({svc})"));
        }
    }
    s
}

/// The findings a host's judged state calls for, each once.
pub fn candidates(h: &HostState, settings: &Settings) -> Vec<Candidate> {
    let mut out = Vec::new();
    let on = |p: &PortFinding| (Some(p.protocol), Some(p.port));
    for p in &h.ports {
        let (protocol, port) = on(p);
        if p.verdict == Verdict::Unexpected {
            let mut evidence = format!(
                "{}; port policy rule {:?} does not expect it",
                port_words(p),
                p.rule
            );
            if let Some(w) = &p.world {
                evidence.push_str(&format!(
                    "; security group {:?} rule {} opens it to the world",
                    w.group_name, w.rule_id
                ));
            }
            out.push(Candidate {
                kind: FindingKind::UnexpectedPort,
                protocol,
                port,
                cve: None,
                severity: if p.world.is_some() {
                    Severity::Critical
                } else {
                    Severity::High
                },
                rule: p.rule.clone(),
                evidence,
            });
        }
        if let Some(w) = &p.world {
            out.push(Candidate {
                kind: FindingKind::WorldOpen,
                protocol,
                port,
                cve: None,
                severity: Severity::Medium,
                rule: w.rule_id.clone(),
                evidence: format!(
                    "{}; security group {:?} ({}) rule {} admits the whole world",
                    port_words(p),
                    w.group_name,
                    w.group_id,
                    w.rule_id
                ),
            });
        }
        let amplifies = p
            .amplification
            .is_some_and(|a| a.is_finite() && a >= settings.amplification);
        let resolver = p.udp.as_ref().and_then(|u| u.recursion) == Some(true);
        if p.protocol == Protocol::Udp && (amplifies || resolver) {
            let what = p.udp.as_ref();
            let evidence = match what {
                Some(u) => format!(
                    "udp/{} answers a {}-byte {} {} request with {} bytes in {} datagram(s){}",
                    p.port,
                    u.request_bytes,
                    u.service,
                    u.request,
                    u.reply_bytes,
                    u.datagrams,
                    if resolver {
                        "; resolves names for anyone (open resolver)"
                    } else {
                        ""
                    }
                ),
                None => format!("udp/{} amplifies", p.port),
            };
            // Reachable from the world (or no security groups to say otherwise): abuse material.
            let severity = if p.world.is_some() || h.vm.is_none() {
                Severity::High
            } else {
                Severity::Medium
            };
            out.push(Candidate {
                kind: FindingKind::Amplifier,
                protocol,
                port,
                cve: None,
                severity,
                rule: what.map_or_else(|| "udp".to_string(), |u| u.service.clone()),
                evidence,
            });
        }
        for v in &p.vulns {
            out.push(vuln_candidate(protocol, port, v));
        }
    }
    if let Some(e) = &h.exposure {
        for (protocol, port) in &e.unfiltered {
            out.push(Candidate {
                kind: FindingKind::SgNotEnforced,
                protocol: Some(*protocol),
                port: Some(*port),
                cve: None,
                severity: Severity::High,
                rule: "security_groups".to_string(),
                evidence: format!(
                    "{protocol}/{port} answered the scanner although no security-group rule admits it{}",
                    e.scanner_source
                        .map(|s| format!(" (from {s})"))
                        .unwrap_or_default()
                ),
            });
        }
    }
    for v in &h.vulns {
        out.push(vuln_candidate(None, None, v));
    }
    out.extend(super::super::tarpit::candidate(h));
    // One candidate per kind and key (a CVE both nmap and Greenbone report: the worse one).
    out.sort_by(|a, b| {
        (a.kind, a.key())
            .cmp(&(b.kind, b.key()))
            .then(b.severity.cmp(&a.severity))
    });
    out.dedup_by(|b, a| a.kind == b.kind && a.key() == b.key());
    out
}

pub(super) fn vuln_candidate(
    protocol: Option<Protocol>,
    port: Option<u16>,
    v: &crate::model::Vulnerability,
) -> Candidate {
    let source = match v.source {
        VulnSource::NmapVulners => "nmap_vulners",
        VulnSource::Greenbone => "greenbone",
    };
    let at = match (protocol, port) {
        (Some(pr), Some(po)) => format!("on {pr}/{po}"),
        _ => "host-wide".to_string(),
    };
    Candidate {
        kind: FindingKind::Vulnerability,
        protocol,
        port,
        cve: Some(v.id.to_ascii_uppercase()),
        severity: Severity::of_cvss(v.cvss),
        rule: source.to_string(),
        evidence: format!(
            "{} {at} (CVSS {}){}{}, reported by {source}",
            v.id,
            v.cvss
                .map_or_else(|| "unknown".to_string(), |c| format!("{c:.1}")),
            v.name
                .as_deref()
                .map(|n| format!(": {n}"))
                .unwrap_or_default(),
            if v.exploit { "; exploit known" } else { "" },
        ),
    }
}
