//! Greenbone's report results as model vulnerabilities, per host address: the stage's own output
//! converted here, in `scan`, so that the agent only applies model types.

use crate::model::{Protocol, ReportedVuln, VulnSource, Vulnerability};
use crate::scan::gmp_xml::VulnResult;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// Turn report results into vulnerabilities per host address. False positives, errors and log-level results are
/// dropped; a result with CVEs gives one finding per CVE, one without gives one under its NVT OID.
pub fn vulnerabilities(results: &[VulnResult]) -> BTreeMap<IpAddr, Vec<ReportedVuln>> {
    let mut out: BTreeMap<IpAddr, Vec<ReportedVuln>> = BTreeMap::new();
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

#[cfg(test)]
mod tests {
    use super::*;

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
        let f = vulnerabilities(&results);
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
