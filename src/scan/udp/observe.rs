//! The UDP scanner's results as the model's observations: an open port becomes a
//! [`UdpReply`] with its amplification factor, ICMP port unreachable a closed port, silence an
//! unknown one (which keeps a port seen open before open). [`Probes`] is the scanner as a
//! [`Prober`](crate::scan::Prober): the pass folds its observations into the same hosts' TCP ones.

use super::{HostResult, Settings, Status};
use crate::model::{HostObservation, ProbeCounts, UdpReply};
use crate::scan::prober::{self, Job, Observations};

/// The UDP exposure probes as a [`Prober`](crate::scan::Prober): every address of the unit, the
/// configured UDP ports (not the unit's TCP ports). Unanswered probes count as `filtered`.
pub struct Probes(pub Settings);

impl crate::scan::Prober for Probes {
    fn name(&self) -> &'static str {
        "udp"
    }

    fn probe(&self, job: Job) -> prober::Running {
        let settings = self.0.clone();
        prober::in_namespace(job, move |job| async move {
            let out = super::scan(
                &job.addresses,
                &settings,
                job.fd_limit,
                job.progress,
                job.cancel,
            )
            .await?;
            let hosts = out
                .hosts
                .iter()
                .map(|h| {
                    let mut obs = HostObservation::default();
                    h.observe(&mut obs);
                    obs
                })
                .collect();
            Ok(Observations {
                hosts,
                counts: ProbeCounts {
                    open: out.counts.open,
                    closed: out.counts.closed,
                    filtered: out.counts.unknown,
                    error: out.counts.error,
                },
                srtt: out.srtt,
            })
        })
    }
}

impl HostResult {
    /// Add what this host answered to `obs` (the same address's observation in this pass).
    pub fn observe(&self, obs: &mut HostObservation) {
        for p in &self.ports {
            match &p.status {
                Status::Open(e) => {
                    if obs.udp_replies.iter().any(|(port, ..)| *port == p.port) {
                        continue; // the same port under a second protocol: the first answer counts
                    }
                    obs.udp_replies.push((
                        p.port,
                        UdpReply {
                            service: e.service.to_owned(),
                            request: e.variant.to_owned(),
                            request_bytes: u32::try_from(e.request_bytes).unwrap_or(u32::MAX),
                            reply_bytes: u32::try_from(e.reply_bytes).unwrap_or(u32::MAX),
                            datagrams: e.datagrams,
                            recursion: e.recursion,
                        },
                        e.amplification,
                    ));
                }
                Status::Closed => obs.udp_closed.push(p.port),
                Status::Unknown => obs.udp_unknown.push(p.port),
                Status::Error(_) => {}
            }
        }
        obs.udp_replies.sort_by_key(|(port, ..)| *port);
        // A port open under one protocol is not also closed or unknown under another.
        let open: Vec<u16> = obs.udp_replies.iter().map(|(p, ..)| *p).collect();
        obs.udp_closed.retain(|p| !open.contains(p));
        obs.udp_unknown.retain(|p| !open.contains(p));
        obs.udp_closed.sort_unstable();
        obs.udp_closed.dedup();
        obs.udp_unknown.sort_unstable();
        obs.udp_unknown.dedup();
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Exposure, PortResult, Protocol};
    use super::*;
    use std::time::Duration;

    #[test]
    fn open_closed_and_silent_ports_become_observations() {
        let open = Exposure {
            service: "memcached",
            variant: "stats",
            answered: vec!["stats"],
            request_bytes: 15,
            reply_bytes: 2219,
            datagrams: 2,
            amplification: 2219.0 / 15.0,
            rtt: Duration::from_millis(1),
            recursion: None,
        };
        let r = HostResult {
            address: "127.0.0.1".parse().unwrap(),
            refused: None,
            ports: vec![
                PortResult {
                    port: 11211,
                    protocol: Protocol::Memcached,
                    status: Status::Open(open),
                },
                PortResult {
                    port: 53,
                    protocol: Protocol::Dns,
                    status: Status::Closed,
                },
                PortResult {
                    port: 161,
                    protocol: Protocol::Snmp,
                    status: Status::Unknown,
                },
                PortResult {
                    port: 123,
                    protocol: Protocol::Ntp,
                    status: Status::Error("EACCES".into()),
                },
            ],
        };
        let mut obs = HostObservation::default();
        r.observe(&mut obs);
        assert!(obs.is_up());
        assert_eq!(obs.udp_replies.len(), 1);
        let (port, reply, amp) = &obs.udp_replies[0];
        assert_eq!(
            (*port, reply.service.as_str(), reply.reply_bytes),
            (11211, "memcached", 2219)
        );
        assert!((amp - 147.93).abs() < 0.01, "{amp}");
        assert_eq!(obs.udp_closed, [53]);
        assert_eq!(obs.udp_unknown, [161]);
    }
}
