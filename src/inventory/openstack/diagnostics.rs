//! Nova server diagnostics (`GET /servers/{id}/diagnostics`): the request, and the parsing of both
//! reply formats into [`types::Diagnostics`](super::types::Diagnostics) in base units (seconds,
//! bytes):
//!
//! - **standard** (microversion 2.48+): `cpu_details[].time` in ns, `memory_details.{maximum,used}`
//!   in MiB, `nic_details[]` named by MAC, `disk_details[]` named by position (`"0"`, `"1"`, ...);
//! - **legacy** (before 2.48, libvirt's flat keys): `cpuN_time` in ns, `memory` (the domain's
//!   maximum), `memory-actual` and `memory-rss` in KiB, `<disk>_read|_write` in bytes with
//!   `_read_req|_write_req|_errors`, `<nic>_rx|_tx` in bytes with `_rx_packets`, `_rx_drop`,
//!   `_rx_errors` and their `_tx_` twins.
//!
//! Unknown keys are ignored, and so is any value that is not a number. Negative numbers are
//! treated as unknown: libvirt reports -1 for a counter it does not support (e.g. `vda_errors`).
//! Diagnostics are admin-only by default policy; the caller decides what a 403, 404, 409 or 501
//! ([`Error::Status`]) means.

use super::api::{Api, Error, ServiceType};
use super::nova::{compute_get, Microversion};
use super::types::{Diagnostics, DiskStats, NicStats};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

const NS: f64 = 1e9;
const KIB: f64 = 1024.0;
const MIB: f64 = 1024.0 * 1024.0;

/// Fetches and parses the diagnostics of one server; the format follows `mv` (2.48+: standard).
pub async fn diagnostics(
    api: &impl Api,
    mv: Microversion,
    server_id: &str,
) -> Result<Diagnostics, Error> {
    let path = format!("/servers/{}/diagnostics", encode_segment(server_id));
    let reply = compute_get(api, mv, &path).await?;
    parse_diagnostics(&reply.body, mv >= Microversion::STANDARD_DIAGNOSTICS).map_err(|reason| {
        Error::Invalid {
            service: ServiceType::Compute,
            path,
            reason,
        }
    })
}

/// Percent-encodes everything but RFC 3986 unreserved characters (server ids are UUIDs anyway).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Parses a diagnostics reply: `standard` for 2.48+, else the legacy flat keys.
pub fn parse_diagnostics(body: &[u8], standard: bool) -> Result<Diagnostics, String> {
    let doc: Value =
        serde_json::from_slice(body).map_err(|e| format!("diagnostics are not JSON: {e}"))?;
    let obj = doc.as_object().ok_or("diagnostics are not a JSON object")?;
    Ok(if standard {
        parse_standard(obj)
    } else {
        parse_legacy(obj)
    })
}

/// A counter or gauge: a non-negative JSON number, else unknown.
fn num(v: Option<&Value>) -> Option<f64> {
    v.and_then(Value::as_f64).filter(|n| *n >= 0.0)
}

fn scaled(v: Option<&Value>, factor: f64) -> Option<f64> {
    num(v).map(|n| n * factor)
}

/// The sum of the per-CPU times when every CPU's time is known.
fn total(cpus: &[(u32, f64)], all_known: bool) -> Option<f64> {
    (all_known && !cpus.is_empty()).then(|| cpus.iter().map(|(_, s)| s).sum())
}

fn parse_standard(obj: &Map<String, Value>) -> Diagnostics {
    let list = |key: &str| -> Vec<Value> {
        obj.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let mut cpus = Vec::new();
    let mut all_known = true;
    for (i, cpu) in list("cpu_details").iter().enumerate() {
        let id = cpu
            .get("id")
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .or_else(|| u32::try_from(i).ok());
        match (id, scaled(cpu.get("time"), 1.0 / NS)) {
            (Some(id), Some(secs)) => cpus.push((id, secs)),
            _ => all_known = false,
        }
    }
    cpus.sort_by_key(|(id, _)| *id);
    let memory = obj.get("memory_details");
    let nics = list("nic_details")
        .iter()
        .enumerate()
        .map(|(i, n)| NicStats {
            name: n
                .get("mac_address")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map_or_else(|| i.to_string(), str::to_string),
            rx_bytes: num(n.get("rx_octets")),
            tx_bytes: num(n.get("tx_octets")),
            rx_packets: num(n.get("rx_packets")),
            tx_packets: num(n.get("tx_packets")),
            rx_drop: num(n.get("rx_drop")),
            tx_drop: num(n.get("tx_drop")),
            rx_errors: num(n.get("rx_errors")),
            tx_errors: num(n.get("tx_errors")),
        })
        .collect();
    let disks = list("disk_details")
        .iter()
        .enumerate()
        .map(|(i, d)| DiskStats {
            name: i.to_string(),
            read_bytes: num(d.get("read_bytes")),
            write_bytes: num(d.get("write_bytes")),
            read_requests: num(d.get("read_requests")),
            write_requests: num(d.get("write_requests")),
            errors: num(d.get("errors_count")),
        })
        .collect();
    Diagnostics {
        format: "standard".into(),
        state: obj.get("state").and_then(Value::as_str).map(str::to_string),
        cpu_seconds: total(&cpus, all_known),
        cpus,
        memory_bytes: scaled(memory.and_then(|m| m.get("maximum")), MIB),
        memory_used_bytes: scaled(memory.and_then(|m| m.get("used")), MIB),
        uptime_seconds: num(obj.get("uptime")),
        nics,
        disks,
    }
}

/// NIC key suffixes, longest first so `_rx_errors` is not taken for a disk's `_errors`.
const NIC_SUFFIXES: [&str; 8] = [
    "_rx_packets",
    "_tx_packets",
    "_rx_errors",
    "_tx_errors",
    "_rx_drop",
    "_tx_drop",
    "_rx",
    "_tx",
];
const DISK_SUFFIXES: [&str; 5] = ["_read_req", "_write_req", "_errors", "_read", "_write"];

fn parse_legacy(obj: &Map<String, Value>) -> Diagnostics {
    let mut cpus = Vec::new();
    let mut nics: BTreeMap<String, NicStats> = BTreeMap::new();
    let mut disks: BTreeMap<String, DiskStats> = BTreeMap::new();
    let (mut memory, mut memory_actual, mut memory_rss) = (None, None, None);
    for (key, value) in obj {
        let Some(n) = num(Some(value)) else { continue };
        match key.as_str() {
            "memory" => memory = Some(n * KIB),
            "memory-actual" => memory_actual = Some(n * KIB),
            "memory-rss" => memory_rss = Some(n * KIB),
            _ => {}
        }
        if let Some(id) = key
            .strip_prefix("cpu")
            .and_then(|k| k.strip_suffix("_time"))
            .and_then(|id| id.parse::<u32>().ok())
        {
            cpus.push((id, n / NS));
            continue;
        }
        if let Some((dev, suffix)) = split_device(key, &NIC_SUFFIXES) {
            let nic = nics.entry(dev.to_string()).or_insert_with(|| NicStats {
                name: dev.to_string(),
                ..NicStats::default()
            });
            let field = match suffix {
                "_rx" => &mut nic.rx_bytes,
                "_tx" => &mut nic.tx_bytes,
                "_rx_packets" => &mut nic.rx_packets,
                "_tx_packets" => &mut nic.tx_packets,
                "_rx_drop" => &mut nic.rx_drop,
                "_tx_drop" => &mut nic.tx_drop,
                "_rx_errors" => &mut nic.rx_errors,
                _ => &mut nic.tx_errors,
            };
            *field = Some(n);
            continue;
        }
        if let Some((dev, suffix)) = split_device(key, &DISK_SUFFIXES) {
            let disk = disks.entry(dev.to_string()).or_insert_with(|| DiskStats {
                name: dev.to_string(),
                ..DiskStats::default()
            });
            let field = match suffix {
                "_read" => &mut disk.read_bytes,
                "_write" => &mut disk.write_bytes,
                "_read_req" => &mut disk.read_requests,
                "_write_req" => &mut disk.write_requests,
                _ => &mut disk.errors,
            };
            *field = Some(n);
        }
    }
    cpus.sort_by_key(|(id, _)| *id);
    Diagnostics {
        format: "legacy".into(),
        state: None,
        cpu_seconds: total(&cpus, true),
        cpus,
        memory_bytes: memory.or(memory_actual),
        memory_used_bytes: memory_rss,
        uptime_seconds: None,
        nics: nics.into_values().collect(),
        disks: disks.into_values().collect(),
    }
}

/// `vnet1_rx_drop` → (`vnet1`, `_rx_drop`) for the first suffix that matches with a non-empty
/// device name in front; `memory…` keys are never devices.
fn split_device<'a>(key: &'a str, suffixes: &[&'static str]) -> Option<(&'a str, &'static str)> {
    if key.starts_with("memory") {
        return None;
    }
    suffixes.iter().find_map(|s| {
        key.strip_suffix(s)
            .filter(|dev| !dev.is_empty())
            .map(|dev| (dev, *s))
    })
}

#[cfg(test)]
mod tests {
    use super::super::nova::fake::{Canned, FakeApi};
    use super::*;

    const LEGACY: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/openstack/nova/server-diagnostics-get-resp-legacy.json"
    ));
    const STANDARD: &[u8] = include_bytes!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/openstack/nova/server-diagnostics-get-resp-v2.48.json"
    ));

    fn parsed(body: &[u8], standard: bool) -> Diagnostics {
        match parse_diagnostics(body, standard) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn legacy_fixture() {
        // cpu0_time 17300000000 ns; memory 524288 KiB (= 512 MiB, an m1.tiny); vda_errors -1 is
        // libvirt's "not supported".
        let want = Diagnostics {
            format: "legacy".into(),
            state: None,
            cpu_seconds: Some(17.3),
            cpus: vec![(0, 17.3)],
            memory_bytes: Some(536_870_912.0),
            memory_used_bytes: None,
            uptime_seconds: None,
            nics: vec![NicStats {
                name: "vnet1".into(),
                rx_bytes: Some(2_070_139.0),
                tx_bytes: Some(140_208.0),
                rx_packets: Some(26_701.0),
                tx_packets: Some(662.0),
                rx_drop: Some(0.0),
                tx_drop: Some(0.0),
                rx_errors: Some(0.0),
                tx_errors: Some(0.0),
            }],
            disks: vec![DiskStats {
                name: "vda".into(),
                read_bytes: Some(262_144.0),
                write_bytes: Some(5_778_432.0),
                read_requests: Some(112.0),
                write_requests: Some(488.0),
                errors: None,
            }],
        };
        assert_eq!(parsed(LEGACY, false), want);
    }

    #[test]
    fn standard_fixture() {
        // memory_details.maximum 524288 MiB as documented (the sample's number is the fake driver's).
        let want = Diagnostics {
            format: "standard".into(),
            state: Some("running".into()),
            cpu_seconds: Some(17.3),
            cpus: vec![(0, 17.3)],
            memory_bytes: Some(524_288.0 * 1_048_576.0),
            memory_used_bytes: Some(0.0),
            uptime_seconds: Some(46_664.0),
            nics: vec![NicStats {
                name: "01:23:45:67:89:ab".into(),
                rx_bytes: Some(2_070_139.0),
                tx_bytes: Some(140_208.0),
                rx_packets: Some(26_701.0),
                tx_packets: Some(662.0),
                rx_drop: Some(200.0),
                tx_drop: Some(500.0),
                rx_errors: Some(100.0),
                tx_errors: Some(400.0),
            }],
            disks: vec![DiskStats {
                name: "0".into(),
                read_bytes: Some(262_144.0),
                write_bytes: Some(5_778_432.0),
                read_requests: Some(112.0),
                write_requests: Some(488.0),
                errors: Some(1.0),
            }],
        };
        assert_eq!(parsed(STANDARD, true), want);
    }

    #[test]
    fn standard_nulls_and_garbage() {
        let body = br#"{"state":null,"uptime":"long","cpu_details":[{"id":1,"time":2000000000},{"id":0,"time":null}],
            "memory_details":{"maximum":null,"used":"x"},
            "nic_details":[{"mac_address":null,"rx_octets":null,"tx_octets":5},{"mac_address":"aa:bb:cc:dd:ee:ff"}],
            "disk_details":[{"read_bytes":null},{"read_bytes":7,"errors_count":-1}],
            "num_cpus":"two"}"#;
        let d = parsed(body, true);
        assert_eq!(d.state, None);
        assert_eq!(d.uptime_seconds, None);
        assert_eq!(d.cpus, vec![(1, 2.0)]);
        assert_eq!(
            d.cpu_seconds, None,
            "not a total when a CPU's time is unknown"
        );
        assert_eq!((d.memory_bytes, d.memory_used_bytes), (None, None));
        let names: Vec<_> = d.nics.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, ["0", "aa:bb:cc:dd:ee:ff"]);
        assert_eq!((d.nics[0].rx_bytes, d.nics[0].tx_bytes), (None, Some(5.0)));
        assert_eq!(d.disks.len(), 2);
        assert_eq!(
            (
                d.disks[1].name.as_str(),
                d.disks[1].read_bytes,
                d.disks[1].errors
            ),
            ("1", Some(7.0), None)
        );

        let empty = parsed(b"{}", true);
        assert_eq!(
            (empty.cpu_seconds, empty.nics.len(), empty.disks.len()),
            (None, 0, 0)
        );
    }

    #[test]
    fn legacy_edge_cases() {
        let body = br#"{"cpu1_time":3000000000,"cpu0_time":1500000000,"cpux_time":9,
            "memory-actual":1024,"memory-rss":512,"memory-swap_in":3,
            "tap0_rx":"lots","tap0_tx":10,"sda_errors":0,"_rx":4,"hypervisor":"xen","weird_key":1}"#;
        let d = parsed(body, false);
        assert_eq!(d.cpus, vec![(0, 1.5), (1, 3.0)]);
        assert_eq!(d.cpu_seconds, Some(4.5));
        assert_eq!(
            d.memory_bytes,
            Some(1_048_576.0),
            "memory-actual when memory is absent"
        );
        assert_eq!(d.memory_used_bytes, Some(524_288.0));
        assert_eq!(d.nics.len(), 1);
        assert_eq!(
            (
                d.nics[0].name.as_str(),
                d.nics[0].rx_bytes,
                d.nics[0].tx_bytes
            ),
            ("tap0", None, Some(10.0))
        );
        assert_eq!(d.disks.len(), 1);
        assert_eq!(
            (d.disks[0].name.as_str(), d.disks[0].errors),
            ("sda", Some(0.0))
        );

        for bad in [&b"nope"[..], b"[1,2]", b"\"x\""] {
            assert!(parse_diagnostics(bad, false).is_err());
            assert!(parse_diagnostics(bad, true).is_err());
        }
    }

    #[tokio::test]
    async fn request_path_headers_and_format() {
        let api = FakeApi::new();
        let id = "0e44cc9c-e052-415d-afbf-469b0d384170";
        let path = format!("/servers/{id}/diagnostics");
        api.ok(&path, STANDARD).ok(&path, LEGACY);
        let mv248 = Microversion {
            major: 2,
            minor: 48,
        };
        let mv247 = Microversion {
            major: 2,
            minor: 47,
        };
        let a = diagnostics(&api, mv248, id).await;
        assert_eq!(a.map(|d| d.format).ok().as_deref(), Some("standard"));
        let b = diagnostics(&api, mv247, id).await;
        assert_eq!(
            b.map(|d| (d.format, d.memory_bytes)).ok(),
            Some(("legacy".to_string(), Some(536_870_912.0)))
        );
        let reqs = api.requests();
        assert_eq!(reqs.len(), 2);
        assert!(reqs[0]
            .headers
            .iter()
            .any(|(k, v)| k == "OpenStack-API-Version" && v == "compute 2.48"));
        assert!(reqs[1]
            .headers
            .iter()
            .any(|(k, v)| k == "X-OpenStack-Nova-API-Version" && v == "2.47"));

        api.on(
            &path,
            Canned::Status(409, "Cannot get diagnostics while the instance is shut off"),
        );
        assert_eq!(
            diagnostics(&api, mv248, id)
                .await
                .err()
                .and_then(|e| e.status()),
            Some(409)
        );
        api.ok(&path, "oops");
        match diagnostics(&api, mv248, id).await {
            Err(Error::Invalid { path: p, .. }) => assert_eq!(p, path),
            other => panic!("{other:?}"),
        }
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
    }
}
