//! Exports the digest e-mail's health, when `[email]` is enabled:
//! `stinger_email_last_digest_timestamp_seconds`, `stinger_email_last_send_success` (after the
//! first attempt) and `stinger_emails_sent_total`.

use super::flag;
use crate::state::State;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;
use std::sync::Arc;

/// Encodes the e-mail families (none while e-mail is off).
#[derive(Debug)]
pub(crate) struct Email {
    pub(super) state: Arc<State>,
}

impl Collector for Email {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let view = self.state.read();
        let Some(e) = &view.email else {
            return Ok(());
        };
        ConstGauge::new(e.last_digest.unwrap_or(0.0)).encode(enc.encode_descriptor(
            "email_last_digest_timestamp",
            "When the last digest window closed (a digest sent, or none needed), in Unix seconds (0 = never).",
            Some(&Unit::Seconds),
            MetricType::Gauge,
        )?)?;
        if let Some(ok) = e.last_attempt_ok {
            ConstGauge::new(flag(ok)).encode(enc.encode_descriptor(
                "email_last_send_success",
                "Whether the last attempt to send a digest e-mail succeeded (1) or not (0).",
                None,
                MetricType::Gauge,
            )?)?;
        }
        ConstCounter::new(e.sent).encode(enc.encode_descriptor(
            "emails_sent",
            "Digest e-mails delivered to the relay since the agent started.",
            None,
            MetricType::Counter,
        )?)
    }
}
