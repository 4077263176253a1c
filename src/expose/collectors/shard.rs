//! Exports `stinger_shard_info{index,count}`: which shard of how many this agent scans, so rules
//! can name the shard of any agent's series (`* on(instance) group_left(index) stinger_shard_info`)
//! and tell a missing shard from a missing agent.

use super::gauges;
use crate::inventory::shard;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

/// Encodes `shard_info`.
#[derive(Debug)]
pub(crate) struct Shard;

impl Collector for Shard {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let s = shard::current();
        gauges(
            &mut enc,
            "shard_info",
            "This agent's shard of the inventory (index, from 0) and how many shards share it; always 1",
            None,
            [(
                [
                    ("index", s.index.to_string()),
                    ("count", s.count.to_string()),
                ],
                1.0,
            )],
        )
    }
}
