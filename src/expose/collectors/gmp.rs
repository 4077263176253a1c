//! Exports `stinger_gmp_feed_timestamp_seconds`: the version of each of gvmd's feeds.

use super::gauges;
use crate::state::State;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Unit;
use std::sync::Arc;

/// Encodes the Greenbone feed family.
#[derive(Debug)]
pub(crate) struct Gmp {
    pub(super) state: Arc<State>,
}

impl Collector for Gmp {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let view = self.state.read();
        gauges(
            &mut enc,
            "gmp_feed_timestamp",
            "Version of gvmd's feed, by feed type, as Unix seconds: an old feed finds nothing new",
            Some(&Unit::Seconds),
            view.gmp_feeds
                .iter()
                .map(|(kind, t)| ([("feed", kind.as_str())], *t)),
        )
    }
}
