//! The registry of a pass's scanners: which [`scan::Prober`]s run, in which phase, and whether
//! nmap can run at all. A new scanner of a pass is one file implementing the trait plus its line
//! in [`probers`].

use crate::config::Config;
use crate::scan::{self, nmap, Phase};
use std::sync::Arc;

/// The registry of a pass's probers, in the order they run. Discovery first: TCP (the pass's
/// probe counts and RTTs), then the UDP exposure probes when `[scan.udp]` is on; then nmap's
/// service identification when `[scan.nmap]` is on and nmap can run (`nmap`: its capabilities and
/// the progress it updates). A new scanner is one file implementing [`scan::Prober`] plus its line
/// here (Greenbone, which runs on its own schedule, is registered in `app::vulns::scanner`).
pub fn probers(
    config: &Config,
    nmap: Option<(&nmap::Capabilities, Arc<nmap::Progress>)>,
) -> Vec<Arc<dyn scan::Prober>> {
    let mut probers: Vec<Arc<dyn scan::Prober>> =
        vec![Arc::new(scan::tcp::Connect(config.tcp.clone()))];
    if let Some(udp) = &config.udp {
        probers.push(Arc::new(scan::udp::Probes(udp.clone())));
    }
    if let (Some(settings), Some((caps, progress))) = (&config.nmap, nmap) {
        probers.push(Arc::new(nmap::Services::new(
            settings.clone(),
            caps.clone(),
            progress,
        )));
    }
    probers
}

/// The probers of one phase, in registry order.
pub(super) fn of_phase(
    probers: &[Arc<dyn scan::Prober>],
    phase: Phase,
) -> Vec<Arc<dyn scan::Prober>> {
    probers
        .iter()
        .filter(|p| p.phase() == phase)
        .cloned()
        .collect()
}

/// Find out whether nmap can run (for the services stage). Missing or too old: one clear warning and
/// `None`; discovery goes on without services.
pub async fn nmap_capabilities(config: &Config) -> Option<nmap::Capabilities> {
    let settings = config.nmap.as_ref()?;
    match nmap::probe_nmap(settings).await {
        Ok(caps) => {
            tracing::info!(
                version = %caps.version,
                privileged = caps.privileged,
                "nmap found: services and versions will be identified"
            );
            Some(caps)
        }
        Err(e) => {
            tracing::warn!(error = %e, "service detection is off; discovery goes on without it");
            None
        }
    }
}
