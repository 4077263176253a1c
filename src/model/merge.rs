//! Folding and comparing records: each prober (TCP connect, UDP probes, nmap, Greenbone) reports
//! its own [`HostObservation`] of an address, and the pass keeps one per target; a VM record
//! rebuilt by an inventory is compared with the stored one, whose `last_seen` alone may differ.

use super::{HostObservation, ProbeCounts, Protocol, Vm};

/// `a ∪ b`, ascending, without duplicates.
fn union(into: &mut Vec<u16>, from: Vec<u16>) {
    into.extend(from);
    into.sort_unstable();
    into.dedup();
}

impl HostObservation {
    /// Add what another prober saw on the same address. Ports are united, counts added; a UDP
    /// port that answered under one protocol is neither closed nor unknown, and its first answer
    /// is the one kept.
    pub fn merge(&mut self, other: HostObservation) {
        union(&mut self.open, other.open);
        self.closed = self.closed.saturating_add(other.closed);
        self.filtered = self.filtered.saturating_add(other.filtered);
        self.errors = self.errors.saturating_add(other.errors);
        self.carried = self.carried.saturating_add(other.carried);
        self.services_known |= other.services_known;
        self.services.extend(other.services);
        union(&mut self.udp_open, other.udp_open);
        union(&mut self.udp_open_filtered, other.udp_open_filtered);
        for reply in other.udp_replies {
            if !self.udp_replies.iter().any(|(p, ..)| *p == reply.0) {
                self.udp_replies.push(reply);
            }
        }
        self.udp_replies.sort_by_key(|(port, ..)| *port);
        union(&mut self.udp_closed, other.udp_closed);
        union(&mut self.udp_unknown, other.udp_unknown);
        let answered: Vec<u16> = self.udp_replies.iter().map(|(p, ..)| *p).collect();
        self.udp_closed.retain(|p| !answered.contains(p));
        self.udp_unknown.retain(|p| !answered.contains(p));
        self.os.extend(other.os);
        self.vulns.extend(other.vulns);
        match (&mut self.reported, other.reported) {
            (Some(into), Some(from)) => into.extend(from),
            (into @ None, from) => *into = from,
            (Some(_), None) => {}
        }
    }

    /// [`merge`](Self::merge) what a prober saw on this address when asked about the open TCP
    /// ports of every target with the address: only what it says about this one's open TCP ports
    /// (and its UDP ports and OS) is this target's. A whole report (`reported`) is kept whole:
    /// `judge::apply_report` keeps findings on ports not open now host-wide.
    pub fn merge_on_open(&mut self, other: &HostObservation) {
        let mine = |proto: &Protocol, port: &u16| {
            *proto != Protocol::Tcp || self.open.binary_search(port).is_ok()
        };
        let mut other = other.clone();
        other.open.retain(|p| self.open.binary_search(p).is_ok());
        other.services.retain(|(proto, port, _)| mine(proto, port));
        other.vulns.retain(|(proto, port, _)| mine(proto, port));
        self.merge(other);
    }
}

impl ProbeCounts {
    /// Add another job's counts.
    pub fn add(&mut self, other: &ProbeCounts) {
        self.open += other.open;
        self.closed += other.closed;
        self.filtered += other.filtered;
        self.error += other.error;
    }
}

impl Vm {
    /// Whether `other` says the same as this record apart from when it was last seen (an unchanged
    /// VM need not be written again).
    pub fn same_facts(&self, other: &Vm) -> bool {
        let Vm {
            id,
            cloud,
            name,
            status,
            project_id,
            project_name,
            user_id,
            user_name,
            metadata,
            flavor,
            created,
            updated,
            addresses,
            diagnostics,
            diagnostics_error,
            first_seen,
            last_seen: _,
        } = self;
        *id == other.id
            && *cloud == other.cloud
            && *name == other.name
            && *status == other.status
            && *project_id == other.project_id
            && *project_name == other.project_name
            && *user_id == other.user_id
            && *user_name == other.user_name
            && *metadata == other.metadata
            && *flavor == other.flavor
            && *created == other.created
            && *updated == other.updated
            && *addresses == other.addresses
            && *diagnostics == other.diagnostics
            && *diagnostics_error == other.diagnostics_error
            && *first_seen == other.first_seen
    }
}

#[cfg(test)]
mod tests {
    use super::super::UdpReply;
    use super::*;

    fn reply(service: &str) -> UdpReply {
        UdpReply {
            service: service.to_owned(),
            request: "q".to_owned(),
            request_bytes: 10,
            reply_bytes: 40,
            datagrams: 1,
            recursion: None,
        }
    }

    #[test]
    fn tcp_and_udp_observations_fold_into_one() {
        let mut tcp = HostObservation {
            open: vec![22, 443],
            closed: 998,
            filtered: 0,
            ..Default::default()
        };
        let udp = HostObservation {
            udp_replies: vec![(53, reply("dns"), 4.0)],
            udp_closed: vec![123, 161],
            udp_unknown: vec![11211],
            ..Default::default()
        };
        tcp.merge(udp);
        assert_eq!(tcp.open, vec![22, 443]);
        assert_eq!(tcp.closed, 998);
        assert_eq!(tcp.udp_replies.len(), 1);
        assert_eq!(tcp.udp_closed, vec![123, 161]);
        assert_eq!(tcp.udp_unknown, vec![11211]);
    }

    #[test]
    fn an_answered_udp_port_is_neither_closed_nor_unknown_and_the_first_answer_stays() {
        let mut a = HostObservation {
            udp_replies: vec![(53, reply("dns"), 4.0)],
            udp_unknown: vec![161],
            open: vec![80],
            closed: u32::MAX - 1,
            ..Default::default()
        };
        let b = HostObservation {
            udp_replies: vec![(53, reply("other"), 9.0), (161, reply("snmp"), 2.0)],
            udp_closed: vec![53],
            open: vec![22, 80],
            closed: 5,
            ..Default::default()
        };
        a.merge(b);
        assert_eq!(a.open, vec![22, 80]);
        assert_eq!(a.closed, u32::MAX, "counts saturate");
        let ports: Vec<(u16, &str)> = a
            .udp_replies
            .iter()
            .map(|(p, r, _)| (*p, r.service.as_str()))
            .collect();
        assert_eq!(ports, vec![(53, "dns"), (161, "snmp")]);
        assert!(a.udp_closed.is_empty());
        assert!(a.udp_unknown.is_empty());
    }

    fn cve(id: &str) -> super::super::Vulnerability {
        super::super::Vulnerability {
            id: id.to_owned(),
            cvss: None,
            source: super::super::VulnSource::Greenbone,
            exploit: false,
            name: None,
            first_seen: 0.0,
            last_seen: 0.0,
        }
    }

    #[test]
    fn a_target_takes_only_what_was_said_about_its_own_open_tcp_ports() {
        // nmap was asked about 22 and 80 on the address: another target with it has 80 open.
        let ssh = super::super::ServiceInfo {
            name: Some("ssh".into()),
            product: None,
            version: None,
            extrainfo: None,
            cpes: vec![],
            method: None,
            confidence: None,
        };
        let http = super::super::ServiceInfo {
            name: Some("http".into()),
            ..ssh.clone()
        };
        let found = HostObservation {
            open: vec![22, 80],
            services_known: true,
            services: vec![
                (Protocol::Tcp, 22, ssh),
                (Protocol::Tcp, 80, http.clone()),
                (Protocol::Udp, 80, http),
            ],
            vulns: vec![
                (Protocol::Tcp, 80, cve("CVE-1")),
                (Protocol::Tcp, 22, cve("CVE-2")),
            ],
            ..Default::default()
        };
        let mut obs = HostObservation {
            open: vec![22],
            ..Default::default()
        };
        obs.merge_on_open(&found);
        assert_eq!(obs.open, [22]);
        assert!(obs.services_known);
        let services: Vec<(Protocol, u16)> =
            obs.services.iter().map(|(p, n, _)| (*p, *n)).collect();
        assert_eq!(services, [(Protocol::Tcp, 22), (Protocol::Udp, 80)]);
        let vulns: Vec<&str> = obs.vulns.iter().map(|(.., v)| v.id.as_str()).collect();
        assert_eq!(vulns, ["CVE-2"]);
    }

    #[test]
    fn whole_reports_fold_and_no_report_is_not_an_empty_one() {
        let mut obs = HostObservation::default();
        obs.merge(HostObservation::default());
        assert_eq!(obs.reported, None, "nobody reported: nothing is remediated");
        obs.merge(HostObservation {
            reported: Some(vec![]),
            ..Default::default()
        });
        assert_eq!(obs.reported, Some(vec![]), "a report with nothing in it");
        obs.merge(HostObservation {
            reported: Some(vec![(None, cve("CVE-3"))]),
            ..Default::default()
        });
        obs.merge(HostObservation::default());
        assert_eq!(obs.reported, Some(vec![(None, cve("CVE-3"))]));
    }

    #[test]
    fn probe_counts_add() {
        let mut c = ProbeCounts {
            open: 1,
            closed: 2,
            filtered: 3,
            error: 4,
        };
        c.add(&c.clone());
        assert_eq!((c.open, c.closed, c.filtered, c.error), (2, 4, 6, 8));
    }
}
