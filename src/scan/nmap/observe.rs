//! nmap's answer for a host as a model observation: the services, CVEs (from the vulners script),
//! UDP states and OS guesses it reported, converted here, in `scan`, so that the agent only folds
//! model types.

use super::HostServices;
use crate::model::{HostObservation, OsGuess, Protocol, ServiceInfo, VulnSource, Vulnerability};
use crate::scan::nmap_xml;

/// The CVEs among vulners' entries (it also lists exploit and advisory ids), one per id.
fn cves(entries: &[nmap_xml::Vuln]) -> impl Iterator<Item = Vulnerability> + '_ {
    let mut seen = std::collections::HashSet::new();
    entries
        .iter()
        .filter(|v| v.id.starts_with("CVE-") || v.kind.as_deref() == Some("cve"))
        .filter(move |v| seen.insert(v.id.clone()))
        .map(|v| Vulnerability {
            id: v.id.clone(),
            cvss: v.cvss,
            source: VulnSource::NmapVulners,
            exploit: v.is_exploit,
            name: None,
            first_seen: 0.0, // the judge sets it
            last_seen: 0.0,
        })
}

fn service(p: &nmap_xml::Port) -> Option<ServiceInfo> {
    p.service.as_ref().map(|s| ServiceInfo {
        name: s.name.clone(),
        product: s.product.clone(),
        version: s.version.clone(),
        extrainfo: s.extrainfo.clone(),
        cpes: s.cpes.clone(),
        method: s.method.clone(),
        confidence: s.confidence,
    })
}

/// Fold nmap's answer for one host into a target's observation: TCP services and CVEs of the
/// ports this observation has open (another target with the same address may have asked about
/// more), UDP states, OS guesses; and mark its services known.
pub fn fold(obs: &mut HostObservation, host: &HostServices) {
    obs.services_known = true;
    for p in &host.tcp {
        if obs.open.binary_search(&p.port).is_err() {
            continue;
        }
        if let Some(s) = service(p) {
            obs.services.push((Protocol::Tcp, p.port, s));
        }
        obs.vulns
            .extend(cves(&p.vulns).map(|v| (Protocol::Tcp, p.port, v)));
    }
    for p in &host.udp {
        match p.state {
            nmap_xml::PortState::Open => {
                obs.udp_open.push(p.port);
                if let Some(s) = service(p) {
                    obs.services.push((Protocol::Udp, p.port, s));
                }
            }
            nmap_xml::PortState::OpenFiltered => obs.udp_open_filtered.push(p.port),
            _ => {}
        }
    }
    obs.os = host
        .os
        .iter()
        .map(|m| OsGuess {
            name: m.name.clone(),
            accuracy: m.accuracy,
            cpes: m.cpes.clone(),
        })
        .collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vulners_entries_become_one_cve_each() {
        let raw = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/nmap/defectdojo-issue4406-vulners.xml"
        ))
        .unwrap();
        let run = nmap_xml::parse(&raw[..], &nmap_xml::Limits::default()).unwrap();
        let port = run
            .hosts
            .iter()
            .flat_map(|h| &h.ports)
            .find(|p| !p.vulns.is_empty())
            .unwrap();
        let found: Vec<Vulnerability> = cves(&port.vulns).collect();
        assert_eq!(found.len(), 8, "8 CVE entries among 42 vulners entries");
        assert!(found
            .iter()
            .all(|v| v.id.starts_with("CVE-") && v.cvss.is_some()));
        assert!(found.iter().all(|v| v.source == VulnSource::NmapVulners));
    }
}
