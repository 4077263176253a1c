//! Exports the VMs' Nova diagnostics, per VM and per VM device: `stinger_vm_cpu_seconds_total`,
//! `stinger_vm_memory_bytes`, `stinger_vm_memory_used_bytes`, the NIC counters
//! `stinger_vm_network_{receive,transmit}_{bytes,packets,drops,errors}_total` and the disk
//! counters `stinger_vm_disk_{read_bytes,written_bytes,errors}_total` and
//! `stinger_vm_disk_{reads,writes}_completed_total`.
//! Unknown values are left out, not exported as 0. At most [`MAX_DEVICES_PER_VM`] NICs and as many
//! disks of each VM are exported (in Nova's order): a VM that reports hundreds (hot-plugged, or a
//! hypervisor that lies) would otherwise multiply the series. All VMs' device series together stay
//! within `[web] max_device_series` (VMs in id order, each device costing one series per counter);
//! the devices left out either way are counted in `stinger_vm_devices_not_exported`.
//!
//! The values are what the last inventory fetched (Nova's diagnostics call is slow and admin-only,
//! so the scrape never makes it); the HELP texts say so.

use super::{counters, gauges};
use crate::inventory::openstack::types::{DiskStats, NicStats};
use crate::state::State;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::registry::Unit;
use std::sync::Arc;

/// Encodes the diagnostics families of the VMs that have diagnostics.
#[derive(Debug)]
pub(crate) struct Diagnostics {
    pub(super) state: Arc<State>,
}

/// NICs, and disks, exported per VM at most.
pub(crate) const MAX_DEVICES_PER_VM: usize = 16;

/// Said in every diagnostics HELP text: where the numbers come from and how old they are.
const CACHED: &str =
    "as of the last inventory (cached from Nova's server diagnostics, not fetched at scrape time)";

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

/// How many NICs and disks of each VM are exported (index-aligned with `vms`), and how many
/// devices are left out: at most [`MAX_DEVICES_PER_VM`] of each kind a VM, and whole devices, in
/// the VMs' order, while their series fit in `budget` (0: no limit).
fn allot(
    vms: &[(&str, &crate::inventory::openstack::types::Diagnostics)],
    budget: usize,
) -> (Vec<(usize, usize)>, usize) {
    let (nic_cost, disk_cost) = (NIC_FIELDS.len(), DISK_FIELDS.len());
    let mut left = if budget == 0 { usize::MAX } else { budget };
    let mut out = Vec::with_capacity(vms.len());
    let mut left_out = 0;
    for (_, d) in vms {
        let nics = d.nics.len().min(MAX_DEVICES_PER_VM).min(left / nic_cost);
        left -= nics * nic_cost;
        let disks = d.disks.len().min(MAX_DEVICES_PER_VM).min(left / disk_cost);
        left -= disks * disk_cost;
        left_out += d.nics.len() - nics + d.disks.len() - disks;
        out.push((nics, disks));
    }
    (out, left_out)
}

impl Collector for Diagnostics {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let view = self.state.read();
        let enc = &mut enc;
        let with: Vec<_> = view
            .vms
            .values()
            .filter_map(|v| v.diagnostics.as_deref().map(|d| (v.id.as_str(), d)))
            .collect();
        let (allotted, left_out) = allot(&with, view.max_device_series);
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
                with.iter().zip(&allotted).flat_map(|((id, d), (nics, _))| {
                    d.nics.iter().take(*nics).filter_map(move |n| {
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
                with.iter()
                    .zip(&allotted)
                    .flat_map(|((id, d), (_, disks))| {
                        d.disks.iter().take(*disks).filter_map(move |k| {
                            field(k).map(|v| ([("vm_id", *id), ("disk", k.name.as_str())], v))
                        })
                    }),
            )?;
        }
        gauges(
            enc,
            "vm_devices_not_exported",
            &format!(
                "NICs and disks of VMs left out of the per-device series (at most {MAX_DEVICES_PER_VM} of each a VM are exported, all VMs' within web.max_device_series), {CACHED}"
            ),
            None,
            [([("", ""); 0], left_out as f64)],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Diagnostics as Diag, DiskStats, NicStats};

    fn diag(nics: usize, disks: usize) -> Diag {
        Diag {
            nics: (0..nics)
                .map(|i| NicStats {
                    name: format!("nic-{i}"),
                    ..NicStats::default()
                })
                .collect(),
            disks: (0..disks)
                .map(|i| DiskStats {
                    name: format!("disk-{i}"),
                    ..DiskStats::default()
                })
                .collect(),
            ..Diag::default()
        }
    }

    #[test]
    fn device_series_stay_within_the_budget_whole_devices_in_vm_order() {
        let (nic, disk) = (NIC_FIELDS.len(), DISK_FIELDS.len());
        let d = diag(2, 1);
        let vms: Vec<(&str, &Diag)> = (0..1000).map(|_| ("vm", &d)).collect();
        let per_vm = 2 * nic + disk;
        // Room for 10 whole VMs and one NIC of the 11th.
        let budget = 10 * per_vm + nic + disk - 1;
        let (allotted, left_out) = allot(&vms, budget);
        assert!(allotted[..10].iter().all(|a| *a == (2, 1)));
        assert_eq!(allotted[10], (1, 0));
        assert!(allotted[11..].iter().all(|a| *a == (0, 0)));
        let series: usize = allotted.iter().map(|(n, k)| n * nic + k * disk).sum();
        assert!(series <= budget, "{series} series for a budget of {budget}");
        assert_eq!(left_out, 1000 * 3 - (10 * 3 + 1));
        // 0 is no limit; the per-VM cap holds either way.
        let many = diag(300, 20);
        let (allotted, left_out) = allot(&[("vm", &many)], 0);
        assert_eq!(allotted, [(MAX_DEVICES_PER_VM, MAX_DEVICES_PER_VM)]);
        assert_eq!(left_out, 300 + 20 - 2 * MAX_DEVICES_PER_VM);
    }
}
