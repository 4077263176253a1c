//! Prometheus metrics of the cloud inventory, built fresh on every scrape from the in-memory
//! [`View`](crate::state::View): one info series per VM, the VMs' Nova diagnostics (CPU, memory,
//! NICs, disks), each inventory source's health, and per cloud host what its security groups open
//! to the world. Series are per VM, per VM device, per source or per cloud host — never per
//! project or user — so their number follows the inventory, not arbitrary API input.
//!
//! Diagnostics are what the last inventory fetched (Nova's diagnostics call is slow and admin-only,
//! so the scrape never makes it); the HELP texts say so.

use super::labels::Clean;
use super::metrics::gauges;
use crate::inventory::openstack::types::{DiskStats, NicStats};
use crate::model::{HostState, Vm};
use crate::state::{State, View};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Said in every diagnostics HELP text: where the numbers come from and how old they are.
const CACHED: &str =
    "as of the last inventory (cached from Nova's server diagnostics, not fetched at scrape time)";

/// Builds the inventory metrics on each scrape.
#[derive(Debug)]
pub struct VmCollector {
    state: Arc<State>,
}

impl VmCollector {
    pub fn new(state: Arc<State>) -> VmCollector {
        VmCollector { state }
    }
}

/// Encode one counter family from (labels, value) pairs.
fn counters<L, K, V>(
    enc: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    rows: impl IntoIterator<Item = (L, f64)>,
) -> Result<(), std::fmt::Error>
where
    L: AsRef<[(K, V)]>,
    K: AsRef<str>,
    V: AsRef<str>,
{
    let help = format!("{help}.");
    let mut fam = enc.encode_descriptor(name, &help, unit, MetricType::Counter)?;
    for (labels, v) in rows {
        ConstCounter::new(v).encode(fam.encode_family(&Clean(labels.as_ref()))?)?;
    }
    Ok(())
}

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

impl Collector for VmCollector {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let view = self.state.read();
        inventory(&view, &mut enc)?;
        vms(&view, &mut enc)?;
        diagnostics(&view, &mut enc)?;
        exposure(&view, &mut enc)
    }
}

/// Per source: up, last success, duration, VMs, targets, diagnostics failures, names complete.
fn inventory(view: &View, enc: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
    let secs = Some(&Unit::Seconds);
    // A source known only from stored VMs (before its first inventory in this process) still has
    // its VMs counted.
    let sources: BTreeSet<&str> = view
        .sources
        .keys()
        .map(String::as_str)
        .chain(view.vms.values().map(|v| v.cloud.as_str()))
        .collect();
    let src = |s: &str| [("source", s.to_owned())];
    gauges(
        enc,
        "inventory_up",
        "Whether the last inventory of the source succeeded (1) or failed (0); while it fails the last good inventory is scanned",
        None,
        view.sources.iter().map(|(s, st)| (src(s), flag(st.up))),
    )?;
    gauges(
        enc,
        "inventory_last_success_timestamp",
        "When the last successful inventory of the source finished, in Unix seconds (0 = never)",
        secs,
        view.sources
            .iter()
            .map(|(s, st)| (src(s), st.last_success.unwrap_or(0.0))),
    )?;
    gauges(
        enc,
        "inventory_duration",
        "How long the last successful inventory of the source took (sources that had one)",
        secs,
        view.sources
            .iter()
            .filter(|(_, st)| st.last_success.is_some())
            .map(|(s, st)| (src(s), st.duration)),
    )?;
    gauges(
        enc,
        "inventory_vms",
        "VMs the source's last good inventory listed",
        None,
        sources.iter().map(|s| {
            let n = view.vms.values().filter(|v| v.cloud == *s).count();
            (src(s), n as f64)
        }),
    )?;
    gauges(
        enc,
        "inventory_targets",
        "Addresses to scan that the source's last good inventory produced",
        None,
        view.sources
            .iter()
            .map(|(s, st)| (src(s), st.targets as f64)),
    )?;
    gauges(
        enc,
        "vm_diagnostics_failed",
        "VMs whose diagnostics the source's last good inventory could not get, by reason (forbidden: 403, admin only; conflict: 409, not running; not_implemented: 501, driver; failed: anything else)",
        None,
        view.sources.iter().flat_map(|(s, st)| {
            st.diagnostics.failures().into_iter().map(move |(reason, n)| {
                (
                    [("source", s.clone()), ("reason", reason.to_owned())],
                    n as f64,
                )
            })
        }),
    )?;
    gauges(
        enc,
        "inventory_names_complete",
        "Whether Keystone let the source's last good inventory name every project and user (1), or ids stand in for some (0)",
        None,
        view.sources
            .iter()
            .map(|(s, st)| (src(s), flag(st.names_complete))),
    )
}

/// One info series per VM.
fn vms(view: &View, enc: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
    fn info(v: &Vm) -> [(&'static str, &str); 7] {
        [
            ("source", v.cloud.as_str()),
            ("vm_id", v.id.as_str()),
            ("name", v.name.as_str()),
            (
                "project",
                v.project_name.as_deref().unwrap_or(v.project_id.as_str()),
            ),
            ("project_id", v.project_id.as_str()),
            ("user", v.user_name.as_deref().unwrap_or(v.user_id.as_str())),
            ("status", v.status.as_str()),
        ]
    }
    gauges(
        enc,
        "vm_info",
        "One series per VM of the cloud inventories, with its source, name, project and user (names, or ids where Keystone gave none) and Nova status; always 1",
        None,
        view.vms.values().map(|v| (info(v), 1.0)),
    )
}

/// A per-device counter: (metric name, unit, help, the value's field).
type Field<T> = (
    &'static str,
    Option<Unit>,
    &'static str,
    fn(&T) -> Option<f64>,
);

const NIC_FIELDS: [Field<NicStats>; 8] = [
    (
        "vm_network_receive",
        Some(Unit::Bytes),
        "Bytes the VM's NIC received",
        |n| n.rx_bytes,
    ),
    (
        "vm_network_transmit",
        Some(Unit::Bytes),
        "Bytes the VM's NIC sent",
        |n| n.tx_bytes,
    ),
    (
        "vm_network_receive_packets",
        None,
        "Packets the VM's NIC received",
        |n| n.rx_packets,
    ),
    (
        "vm_network_transmit_packets",
        None,
        "Packets the VM's NIC sent",
        |n| n.tx_packets,
    ),
    (
        "vm_network_receive_drops",
        None,
        "Received packets the VM's NIC dropped",
        |n| n.rx_drop,
    ),
    (
        "vm_network_transmit_drops",
        None,
        "Outgoing packets the VM's NIC dropped",
        |n| n.tx_drop,
    ),
    (
        "vm_network_receive_errors",
        None,
        "Receive errors of the VM's NIC",
        |n| n.rx_errors,
    ),
    (
        "vm_network_transmit_errors",
        None,
        "Transmit errors of the VM's NIC",
        |n| n.tx_errors,
    ),
];

const DISK_FIELDS: [Field<DiskStats>; 5] = [
    (
        "vm_disk_read",
        Some(Unit::Bytes),
        "Bytes read from the VM's disk",
        |d| d.read_bytes,
    ),
    (
        "vm_disk_written",
        Some(Unit::Bytes),
        "Bytes written to the VM's disk",
        |d| d.write_bytes,
    ),
    (
        "vm_disk_reads_completed",
        None,
        "Read requests the VM's disk completed",
        |d| d.read_requests,
    ),
    (
        "vm_disk_writes_completed",
        None,
        "Write requests the VM's disk completed",
        |d| d.write_requests,
    ),
    ("vm_disk_errors", None, "Errors of the VM's disk", |d| {
        d.errors
    }),
];

/// Diagnostics of VMs that have them; unknown (`None`) values are left out.
fn diagnostics(view: &View, enc: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
    let with: Vec<_> = view
        .vms
        .values()
        .filter_map(|v| v.diagnostics.as_ref().map(|d| (v.id.as_str(), d)))
        .collect();
    let vm = |id: &str| [("vm_id", id.to_owned())];
    counters(
        enc,
        "vm_cpu",
        &format!("CPU time the VM used over all its vCPUs since it started, {CACHED}"),
        Some(&Unit::Seconds),
        with.iter()
            .filter_map(|(id, d)| d.cpu_seconds.map(|s| (vm(id), s))),
    )?;
    gauges(
        enc,
        "vm_memory",
        &format!("Memory given to the VM, {CACHED}"),
        Some(&Unit::Bytes),
        with.iter()
            .filter_map(|(id, d)| d.memory_bytes.map(|b| (vm(id), b))),
    )?;
    gauges(
        enc,
        "vm_memory_used",
        &format!("Memory the VM uses, {CACHED}"),
        Some(&Unit::Bytes),
        with.iter()
            .filter_map(|(id, d)| d.memory_used_bytes.map(|b| (vm(id), b))),
    )?;
    for (name, unit, help, field) in &NIC_FIELDS {
        counters(
            enc,
            name,
            &format!(
                "{help} since the VM started (nic: MAC address or hypervisor device), {CACHED}"
            ),
            unit.as_ref(),
            with.iter().flat_map(|(id, d)| {
                d.nics.iter().filter_map(move |n| {
                    field(n).map(|v| ([("vm_id", *id), ("nic", n.name.as_str())], v))
                })
            }),
        )?;
    }
    for (name, unit, help, field) in &DISK_FIELDS {
        counters(
            enc,
            name,
            &format!("{help} since the VM started (disk: device name or position), {CACHED}"),
            unit.as_ref(),
            with.iter().flat_map(|(id, d)| {
                d.disks.iter().filter_map(move |k| {
                    field(k).map(|v| ([("vm_id", *id), ("disk", k.name.as_str())], v))
                })
            }),
        )?;
    }
    Ok(())
}

/// Per cloud host (hosts whose security groups were judged): world-open ports, waiting ranges,
/// unfiltered ports.
fn exposure(view: &View, enc: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
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
        enc,
        "host_world_open_ports",
        "Open ports of the cloud host that a security-group rule opens to the whole world (or port security is off)",
        None,
        rows(|h, _| h.ports.iter().filter(|p| p.world.is_some()).count()),
    )?;
    gauges(
        enc,
        "host_exposure_waiting_ranges",
        "Port ranges the cloud host's security groups open to the whole world where nothing was found listening",
        None,
        rows(|_, e| e.waiting.len()),
    )?;
    gauges(
        enc,
        "host_unfiltered_ports",
        "Open ports of the cloud host that no security-group rule admits the scanner to, yet it reached them: a hint that the groups are not enforced",
        None,
        rows(|_, e| e.unfiltered.len()),
    )
}

#[cfg(test)]
pub(crate) mod tests;
