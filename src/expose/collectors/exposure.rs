//! Exports, per cloud host (a host whose security groups were judged), what its groups open to
//! the world: `stinger_host_world_open_ports`, `stinger_host_exposure_waiting_ranges` and
//! `stinger_host_unfiltered_ports`.

use super::gauges;
use crate::model::HostState;
use crate::state::State;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use std::sync::Arc;

/// Encodes the per-cloud-host exposure families.
#[derive(Debug)]
pub(crate) struct Exposure {
    pub(super) state: Arc<State>,
}

impl Collector for Exposure {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let view = self.state.read();
        let rows = |f: fn(&HostState, &crate::model::Exposure) -> usize| {
            view.hosts.values().filter_map(move |h| {
                h.exposure.as_ref().map(|e| {
                    (
                        [("host", h.id.as_str()), ("group", h.group.as_str())],
                        f(h, e) as f64,
                    )
                })
            })
        };
        gauges(
            &mut enc,
            "host_world_open_ports",
            "Open ports of the cloud host that a security-group rule opens to the whole world (or port security is off)",
            None,
            rows(|h, _| h.ports.iter().filter(|p| p.world.is_some()).count()),
        )?;
        gauges(
            &mut enc,
            "host_exposure_waiting_ranges",
            "Port ranges the cloud host's security groups open to the whole world where nothing was found listening",
            None,
            rows(|_, e| e.waiting.len()),
        )?;
        gauges(
            &mut enc,
            "host_unfiltered_ports",
            "Open ports of the cloud host that no security-group rule admits the scanner to, yet it reached them: a hint that the groups are not enforced",
            None,
            rows(|_, e| e.unfiltered.len()),
        )
    }
}
