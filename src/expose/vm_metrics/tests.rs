//! The inventory series from a hand-built view: exact series and values, what is left out, the
//! `world` label of `stinger_open_port_info`, promtool's verdict, and that every metric the shipped
//! alerts and dashboard use exists.

use crate::expose::testdata::{self, CIDR_HOST, FIXED_A, FIXED_B, FLOATING_A, ORPHAN};
use crate::expose::{encode_metrics, metrics};
use crate::model::Stage;
use crate::state::State;
use std::collections::BTreeSet;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use stinger_testsupport::promtool;

/// The Prometheus text format of a registry over the test view (budget 10 000 port series).
fn scrape() -> String {
    scrape_with(10_000)
}

fn scrape_with(budget: usize) -> String {
    let state = Arc::new(State::default());
    *state.write() = testdata::view();
    let (reg, m) = metrics::registry(state, Arc::new(AtomicUsize::new(budget)));
    // Event families appear once they have a series.
    m.run(Stage::Discovery, "success", 3.0);
    encode_metrics(&reg, false).unwrap()
}

/// The value of exactly this series (name and labels as written), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    let mut found = text.lines().filter_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse::<f64>()
            .ok()
    });
    let first = found.next();
    assert!(found.next().is_none(), "{series} appears twice");
    first
}

fn count(text: &str, family: &str) -> usize {
    text.lines()
        .filter(|l| l.starts_with(&format!("{family}{{")) || l.starts_with(&format!("{family} ")))
        .count()
}

#[test]
fn every_vm_has_one_info_series_with_names_or_ids() {
    let m = scrape();
    let cases = [
        r#"stinger_vm_info{source="east",vm_id="vm-a",name="web-1",project="demo",project_id="p-1",user="alice",status="ACTIVE"}"#,
        r#"stinger_vm_info{source="east",vm_id="vm-b",name="db-1",project="p-2",project_id="p-2",user="u-2",status="SHUTOFF"}"#,
        r#"stinger_vm_info{source="west",vm_id="vm-c",name="batch",project="p-3",project_id="p-3",user="u-3",status="ACTIVE"}"#,
    ];
    for series in cases {
        assert_eq!(sample(&m, series), Some(1.0), "{series} in\n{m}");
    }
    assert_eq!(count(&m, "stinger_vm_info"), 3);
}

#[test]
fn diagnostics_of_both_formats_become_base_unit_series() {
    let m = scrape();
    // 2.48 (vm-a): ns -> s, MiB -> bytes, NIC by MAC, disk by position.
    let mac = r#"vm_id="vm-a",nic="01:23:45:67:89:ab""#;
    let std_cases: &[(String, f64)] = &[
        (r#"stinger_vm_cpu_seconds_total{vm_id="vm-a"}"#.into(), 17.3),
        (
            r#"stinger_vm_memory_bytes{vm_id="vm-a"}"#.into(),
            524_288.0 * 1_048_576.0,
        ),
        (r#"stinger_vm_memory_used_bytes{vm_id="vm-a"}"#.into(), 0.0),
        (
            format!("stinger_vm_network_receive_bytes_total{{{mac}}}"),
            2_070_139.0,
        ),
        (
            format!("stinger_vm_network_transmit_bytes_total{{{mac}}}"),
            140_208.0,
        ),
        (
            format!("stinger_vm_network_receive_packets_total{{{mac}}}"),
            26_701.0,
        ),
        (
            format!("stinger_vm_network_transmit_packets_total{{{mac}}}"),
            662.0,
        ),
        (
            format!("stinger_vm_network_receive_drops_total{{{mac}}}"),
            200.0,
        ),
        (
            format!("stinger_vm_network_transmit_drops_total{{{mac}}}"),
            500.0,
        ),
        (
            format!("stinger_vm_network_receive_errors_total{{{mac}}}"),
            100.0,
        ),
        (
            format!("stinger_vm_network_transmit_errors_total{{{mac}}}"),
            400.0,
        ),
        (
            r#"stinger_vm_disk_read_bytes_total{vm_id="vm-a",disk="0"}"#.into(),
            262_144.0,
        ),
        (
            r#"stinger_vm_disk_written_bytes_total{vm_id="vm-a",disk="0"}"#.into(),
            5_778_432.0,
        ),
        (
            r#"stinger_vm_disk_reads_completed_total{vm_id="vm-a",disk="0"}"#.into(),
            112.0,
        ),
        (
            r#"stinger_vm_disk_writes_completed_total{vm_id="vm-a",disk="0"}"#.into(),
            488.0,
        ),
        (
            r#"stinger_vm_disk_errors_total{vm_id="vm-a",disk="0"}"#.into(),
            1.0,
        ),
    ];
    // Legacy (vm-b): libvirt's flat keys, KiB memory, devices by name.
    let legacy_cases: &[(&str, f64)] = &[
        (r#"stinger_vm_cpu_seconds_total{vm_id="vm-b"}"#, 17.3),
        (
            r#"stinger_vm_memory_bytes{vm_id="vm-b"}"#,
            524_288.0 * 1024.0,
        ),
        (
            r#"stinger_vm_network_receive_bytes_total{vm_id="vm-b",nic="vnet1"}"#,
            2_070_139.0,
        ),
        (
            r#"stinger_vm_network_transmit_packets_total{vm_id="vm-b",nic="vnet1"}"#,
            662.0,
        ),
        (
            r#"stinger_vm_network_receive_drops_total{vm_id="vm-b",nic="vnet1"}"#,
            0.0,
        ),
        (
            r#"stinger_vm_disk_read_bytes_total{vm_id="vm-b",disk="vda"}"#,
            262_144.0,
        ),
        (
            r#"stinger_vm_disk_writes_completed_total{vm_id="vm-b",disk="vda"}"#,
            488.0,
        ),
    ];
    let all = std_cases
        .iter()
        .map(|(s, v)| (s.as_str(), *v))
        .chain(legacy_cases.iter().copied());
    for (series, want) in all {
        let got = sample(&m, series).unwrap_or_else(|| panic!("{series} missing in\n{m}"));
        assert!((got - want).abs() < 1e-6, "{series}: {got} != {want}");
    }
    // Unknown values are left out, not exported as 0: legacy has no used memory and libvirt's -1
    // for vda_errors; vm-c has no diagnostics at all.
    assert_eq!(
        sample(&m, r#"stinger_vm_memory_used_bytes{vm_id="vm-b"}"#),
        None
    );
    assert_eq!(
        sample(
            &m,
            r#"stinger_vm_disk_errors_total{vm_id="vm-b",disk="vda"}"#
        ),
        None
    );
    let vm_c: Vec<&str> = m
        .lines()
        .filter(|l| l.contains(r#"vm_id="vm-c""#))
        .collect();
    assert_eq!(vm_c.len(), 1, "{vm_c:?}");
    assert!(vm_c[0].starts_with("stinger_vm_info{"));
    assert_eq!(count(&m, "stinger_vm_cpu_seconds_total"), 2);
    assert_eq!(count(&m, "stinger_vm_disk_errors_total"), 1);
    // The HELP text says the values are cached.
    assert!(
        m.contains("# HELP stinger_vm_cpu_seconds_total CPU time the VM used over all its vCPUs since it started, as of the last inventory (cached"),
        "{m}"
    );
    assert!(m.contains("# TYPE stinger_vm_cpu_seconds_total counter"));
    assert!(m.contains("# TYPE stinger_vm_memory_bytes gauge"));
}

#[test]
fn a_vm_with_hundreds_of_devices_exports_sixteen_of_each_and_counts_the_rest() {
    use crate::expose::collectors::diagnostics::MAX_DEVICES_PER_VM;
    use crate::model::{DiskStats, NicStats};
    let state = Arc::new(State::default());
    let mut view = testdata::view();
    assert_eq!(
        sample(&scrape(), "stinger_vm_devices_not_exported"),
        Some(0.0),
        "none left out of the test view"
    );
    let (id, vm) = view
        .vms
        .iter_mut()
        .find(|(_, v)| v.diagnostics.is_some())
        .expect("a VM with diagnostics");
    let id = id.clone();
    let vm = std::sync::Arc::make_mut(vm);
    let d = vm.diagnostics.as_mut().unwrap();
    d.nics = (0..300)
        .map(|i| NicStats {
            name: format!("nic-{i}"),
            rx_bytes: Some(1.0),
            ..NicStats::default()
        })
        .collect();
    d.disks = (0..20)
        .map(|i| DiskStats {
            name: format!("disk-{i}"),
            errors: Some(0.0),
            ..DiskStats::default()
        })
        .collect();
    *state.write() = view;
    let (reg, _) = metrics::registry(state.clone(), Arc::new(AtomicUsize::new(10_000)));
    let text = encode_metrics(&reg, false).unwrap();
    let of_vm = |family: &str| {
        text.lines()
            .filter(|l| l.starts_with(&format!("{family}{{")) && l.contains(&id))
            .count()
    };
    assert_eq!(
        of_vm("stinger_vm_network_receive_bytes_total"),
        MAX_DEVICES_PER_VM
    );
    assert_eq!(of_vm("stinger_vm_disk_errors_total"), MAX_DEVICES_PER_VM);
    assert_eq!(
        sample(&text, "stinger_vm_devices_not_exported"),
        Some((300 - MAX_DEVICES_PER_VM + 20 - MAX_DEVICES_PER_VM) as f64)
    );
    promtool::check_metrics(&text).unwrap();

    // Within [web] max_device_series: room for one NIC's series (of the first VM with diagnostics;
    // the test view's other VMs have none), no disk.
    let first_with = {
        let view = state.read();
        view.vms
            .values()
            .find(|v| v.diagnostics.is_some())
            .map(|v| v.id.clone())
    };
    assert_eq!(first_with.as_deref(), Some(id.as_str()));
    let devices_before: usize = {
        let view = state.read();
        view.vms
            .values()
            .filter_map(|v| v.diagnostics.as_ref())
            .map(|d| d.nics.len() + d.disks.len())
            .sum()
    };
    state.write().max_device_series = 8;
    let text = encode_metrics(&reg, false).unwrap();
    let of_vm = |family: &str| {
        text.lines()
            .filter(|l| l.starts_with(&format!("{family}{{")) && l.contains(&id))
            .count()
    };
    assert_eq!(of_vm("stinger_vm_network_receive_bytes_total"), 1);
    assert_eq!(of_vm("stinger_vm_disk_errors_total"), 0);
    assert_eq!(
        sample(&text, "stinger_vm_devices_not_exported"),
        Some((devices_before - 1) as f64)
    );
    promtool::check_metrics(&text).unwrap();
}

#[test]
fn inventory_health_per_source() {
    let m = scrape();
    let cases: &[(&str, Option<f64>)] = &[
        (r#"stinger_inventory_up{source="east"}"#, Some(1.0)),
        (r#"stinger_inventory_up{source="west"}"#, Some(0.0)),
        (
            r#"stinger_inventory_last_success_timestamp_seconds{source="east"}"#,
            Some(1.8e9),
        ),
        (
            r#"stinger_inventory_last_success_timestamp_seconds{source="west"}"#,
            Some(0.0),
        ),
        (
            r#"stinger_inventory_duration_seconds{source="east"}"#,
            Some(12.5),
        ),
        // Never succeeded: no duration to report.
        (r#"stinger_inventory_duration_seconds{source="west"}"#, None),
        (r#"stinger_inventory_vms{source="east"}"#, Some(2.0)),
        (r#"stinger_inventory_vms{source="west"}"#, Some(1.0)),
        (r#"stinger_inventory_targets{source="east"}"#, Some(3.0)),
        (r#"stinger_inventory_targets{source="west"}"#, Some(0.0)),
        (
            r#"stinger_inventory_names_complete{source="east"}"#,
            Some(1.0),
        ),
        (
            r#"stinger_inventory_names_complete{source="west"}"#,
            Some(0.0),
        ),
        (
            r#"stinger_vm_diagnostics_failed{source="east",reason="conflict"}"#,
            Some(1.0),
        ),
        (
            r#"stinger_vm_diagnostics_failed{source="east",reason="forbidden"}"#,
            Some(0.0),
        ),
        (
            r#"stinger_vm_diagnostics_failed{source="west",reason="forbidden"}"#,
            Some(1.0),
        ),
        (
            r#"stinger_vm_diagnostics_failed{source="west",reason="not_implemented"}"#,
            Some(0.0),
        ),
    ];
    for (series, want) in cases {
        assert_eq!(sample(&m, series), *want, "{series} in\n{m}");
    }
    assert_eq!(
        count(&m, "stinger_vm_diagnostics_failed"),
        8,
        "4 reasons x 2 sources"
    );
}

#[test]
fn exposure_series_per_cloud_host_and_the_world_label() {
    let m = scrape();
    let host = |name: &str, id: &str| format!(r#"{name}{{host="{id}",group="east"}}"#);
    let cases = [
        // 22 (r-ssh); 5432 is LAN-only.
        (host("stinger_host_world_open_ports", FIXED_A), 1.0),
        // Port security off: everything is world-open.
        (host("stinger_host_world_open_ports", FLOATING_A), 2.0),
        (host("stinger_host_world_open_ports", FIXED_B), 0.0),
        // 80 and 443 open to the world, nothing listening.
        (host("stinger_host_exposure_waiting_ranges", FIXED_A), 2.0),
        // Every TCP and every UDP port: one entry each.
        (
            host("stinger_host_exposure_waiting_ranges", FLOATING_A),
            2.0,
        ),
        (host("stinger_host_exposure_waiting_ranges", FIXED_B), 0.0),
        // The scanner (192.168.0.9) reached 5432 that only 10.0.0.0/8 may reach.
        (host("stinger_host_unfiltered_ports", FIXED_A), 1.0),
        (host("stinger_host_unfiltered_ports", FLOATING_A), 0.0),
        // IPv6 host, IPv4 scanner: nothing can be said.
        (host("stinger_host_unfiltered_ports", FIXED_B), 0.0),
        (host("stinger_host_unfiltered_ports", ORPHAN), 0.0),
    ];
    for (series, want) in &cases {
        assert_eq!(sample(&m, series), Some(*want), "{series} in\n{m}");
    }
    // The CIDR host has no security groups: no exposure series.
    assert!(
        !m.lines().any(|l| l.starts_with("stinger_host_")
            && l.contains(&format!("host=\"{CIDR_HOST}\""))
            && (l.contains("world") || l.contains("unfiltered") || l.contains("waiting"))),
        "{m}"
    );
    assert_eq!(count(&m, "stinger_host_unfiltered_ports"), 4);

    let info = |id: &str,
                addr: &str,
                port: u16,
                expected: bool,
                rule: &str,
                svc: &str,
                world: &str| {
        let group = if id == CIDR_HOST { "dmz" } else { "east" };
        format!(
            r#"stinger_open_port_info{{host="{id}",address="{addr}",group="{group}",protocol="tcp",port="{port}",expected="{expected}",rule="{rule}",service="{svc}",product="",version="",world="{world}"}}"#
        )
    };
    for series in [
        info(FIXED_A, "10.0.0.5", 22, true, "global", "ssh", "true"),
        info(
            FIXED_A,
            "10.0.0.5",
            5432,
            false,
            "default",
            "postgresql",
            "false",
        ),
        info(
            FLOATING_A,
            "203.0.113.5",
            8080,
            false,
            "default",
            "",
            "true",
        ),
        info(
            FIXED_B,
            "2001:db8::7",
            3306,
            false,
            "default",
            "mysql",
            "false",
        ),
        info(CIDR_HOST, CIDR_HOST, 80, true, "global", "http", "unknown"),
    ] {
        assert_eq!(sample(&m, &series), Some(1.0), "{series} in\n{m}");
    }
}

#[test]
fn the_port_budget_keeps_world_open_unexpected_ports_first() {
    // 7 open ports; 3 unexpected, one of them (8080) world-open.
    let m = scrape_with(1);
    let ports: Vec<&str> = m
        .lines()
        .filter(|l| l.starts_with("stinger_open_port_info{"))
        .collect();
    assert_eq!(ports.len(), 1, "{m}");
    assert!(
        ports[0].contains(r#"port="8080""#) && ports[0].contains(r#"world="true""#),
        "{}",
        ports[0]
    );
    assert_eq!(
        sample(&m, "stinger_metrics_series_dropped_total"),
        Some(6.0)
    );
}

#[test]
fn promtool_accepts_the_exposition_and_openmetrics_types_counters_without_total() {
    let m = scrape();
    promtool::check_metrics(&m).unwrap();
    // An empty inventory too (families with no series).
    let (reg, _) = metrics::registry(Arc::new(State::default()), Arc::new(AtomicUsize::new(10)));
    promtool::check_metrics(&encode_metrics(&reg, false).unwrap()).unwrap();

    let state = Arc::new(State::default());
    *state.write() = testdata::view();
    let (reg, _) = metrics::registry(state, Arc::new(AtomicUsize::new(10)));
    let om = encode_metrics(&reg, true).unwrap();
    assert!(om.contains("# TYPE stinger_vm_cpu_seconds counter"), "{om}");
    assert!(om.contains("# UNIT stinger_vm_cpu_seconds seconds"), "{om}");
    assert!(
        om.contains("# UNIT stinger_vm_network_receive_bytes bytes"),
        "{om}"
    );
    assert!(
        om.contains(r#"stinger_vm_cpu_seconds_total{vm_id="vm-a"} 17.3"#),
        "{om}"
    );
    assert!(om.ends_with("# EOF\n"));
}

/// Metric names (`stinger_...`) used in a text, recording rules (`stinger:...`) excluded.
fn names_used(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("stinger_") {
        let before = rest[..i].chars().next_back();
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        // Skip words that merely contain it (e.g. `job_stinger_x`) and the `stinger_` prefix alone.
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') && end > 8 {
            out.insert(tail[..end].to_string());
        }
        rest = &tail[end.max(1)..];
    }
    out
}

#[test]
fn every_metric_the_alerts_and_the_dashboard_use_is_exported() {
    let m = scrape();
    let mut known = BTreeSet::new();
    for l in m.lines() {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            let mut it = rest.split(' ');
            let (name, kind) = (it.next().unwrap(), it.next().unwrap());
            known.insert(name.to_string());
            if kind == "histogram" {
                for s in ["_bucket", "_sum", "_count"] {
                    known.insert(format!("{name}{s}"));
                }
            }
        }
    }
    assert!(known.len() > 40, "{known:?}");
    let root = env!("CARGO_MANIFEST_DIR");
    for file in [
        "alerts/stinger.rules.yml",
        "alerts/stinger.rules.test.yml",
        "dashboards/stinger-overview.json",
        "dashboards/stinger-vm.json",
    ] {
        let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
        let used = names_used(&text);
        assert!(!used.is_empty(), "{file}");
        let unknown: Vec<_> = used.difference(&known).collect();
        assert!(
            unknown.is_empty(),
            "{file} uses unknown metrics {unknown:?}"
        );
    }
    // The new OpenStack alerts and dashboard row are there.
    let rules = std::fs::read_to_string(format!("{root}/alerts/stinger.rules.yml")).unwrap();
    for name in [
        "StingerInventoryDown",
        "StingerWorldOpenUnexpectedPort",
        "StingerSecurityGroupNotEnforced",
    ] {
        assert!(rules.contains(&format!("alert: {name}")), "{name}");
    }
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{root}/dashboards/stinger-overview.json")).unwrap(),
    )
    .unwrap();
    let panels = dash["panels"].as_array().unwrap();
    assert!(panels
        .iter()
        .any(|p| p["type"] == "row" && p["title"] == "OpenStack"));
    let ids: Vec<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    let unique: BTreeSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "panel ids are unique: {ids:?}");
    for p in panels {
        let g = &p["gridPos"];
        let (x, w) = (g["x"].as_u64().unwrap(), g["w"].as_u64().unwrap());
        assert!(w >= 1 && x + w <= 24, "{}: gridPos {g}", p["title"]);
    }
}

#[test]
fn names_used_finds_metric_names_only() {
    let got = names_used(
        r#"sum(stinger_vm_info{x="1"}) / stinger:coverage_gap_start_timestamp_seconds + rate(stinger_vm_cpu_seconds_total[5m]) job_stinger_x stinger_"#,
    );
    let want: BTreeSet<String> = ["stinger_vm_info", "stinger_vm_cpu_seconds_total"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(got, want);
}
