//! Exports `stinger_build_info`: Stinger's version and git revision.

use super::gauges;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

/// Encodes `build_info`.
#[derive(Debug)]
pub(crate) struct Build;

impl Collector for Build {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        gauges(
            &mut enc,
            "build_info",
            "Stinger's version and git revision; always 1",
            None,
            [(
                [
                    ("version", crate::build::VERSION),
                    ("revision", crate::build::REVISION),
                ],
                1.0,
            )],
        )
    }
}
