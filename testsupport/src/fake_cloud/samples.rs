//! The upstream API samples every fake resource is cloned from (compiled in from
//! `tests/fixtures/openstack/`): [`Templates`], the ids of the sample project, server and networks,
//! and the rewrites that move the samples' addresses onto loopback.

use std::net::Ipv4Addr;

use serde_json::{Map, Value};

const NOVA_SERVERS_V2_100: &str =
    include_str!("../../../tests/fixtures/openstack/nova/servers-details-resp-v2.100.json");
const NOVA_SERVERS_V2_1: &str =
    include_str!("../../../tests/fixtures/openstack/nova/servers-details-resp-v2.1.json");
const NOVA_VERSIONS: &str =
    include_str!("../../../tests/fixtures/openstack/nova/versions-get-resp.json");
const NOVA_VERSION_V21: &str =
    include_str!("../../../tests/fixtures/openstack/nova/v21-version-get-resp.json");
const NOVA_DIAG_LEGACY: &str =
    include_str!("../../../tests/fixtures/openstack/nova/server-diagnostics-get-resp-legacy.json");
const NOVA_DIAG_V2_48: &str =
    include_str!("../../../tests/fixtures/openstack/nova/server-diagnostics-get-resp-v2.48.json");
const NEUTRON_PORTS: &str =
    include_str!("../../../tests/fixtures/openstack/neutron/ports-list-response.json");
const NEUTRON_FIPS: &str =
    include_str!("../../../tests/fixtures/openstack/neutron/floating-ips-list-response.json");
const NEUTRON_NETWORKS: &str =
    include_str!("../../../tests/fixtures/openstack/neutron/networks-list-response.json");
const NEUTRON_SGS: &str =
    include_str!("../../../tests/fixtures/openstack/neutron/security-groups-list-response.json");

/// Project, server and network of the upstream Nova sample (kept by
/// [`Cloud::from_samples`](super::Cloud::from_samples)).
pub const SAMPLE_PROJECT: &str = "6f70656e737461636b20342065766572";
pub const SAMPLE_SERVER_ID: &str = "f5dc173b-6804-445a-a6d8-c705dad5b5eb";
/// The sample server's fixed address, rewritten from 192.168.1.30.
pub const SAMPLE_FIXED_IP: Ipv4Addr = Ipv4Addr::new(127, 203, 1, 30);
/// The sample's associated floating IP, rewritten from 172.24.4.228.
pub const SAMPLE_FLOATING_IP: Ipv4Addr = Ipv4Addr::new(127, 203, 4, 228);
/// The external network of the Neutron samples (`floating_network_id`).
pub(super) const PUBLIC_NET_ID: &str = "376da547-b977-4cfe-9cba-275c80debf57";
pub(super) const SAMPLE_ROUTER_ID: &str = "d23abc8d-2991-4a55-ba98-2aaea84cc72f";

fn parse_sample(name: &str, text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("fixture {name} is not valid JSON: {e}"))
}

fn first_item(name: &str, doc: &Value, key: &str, index: usize) -> Result<Value, String> {
    doc.get(key)
        .and_then(|v| v.get(index))
        .cloned()
        .ok_or_else(|| format!("fixture {name} has no {key}[{index}]"))
}

/// The sample objects every generated resource is cloned from.
#[derive(Debug, Clone)]
pub(super) struct Templates {
    pub(super) server: Value,
    pub(super) flavor_v21: Value,
    pub(super) admin_attrs: Map<String, Value>,
    pub(super) port: Value,
    pub(super) router_ports: Vec<Value>,
    pub(super) fip: Value,
    pub(super) sample_fips: Vec<Value>,
    pub(super) network: Value,
    pub(super) sample_networks: Vec<Value>,
    pub(super) sg: Value,
    pub(super) versions: Value,
    pub(super) version_v21: Value,
    pub(super) diag_legacy: Value,
    pub(super) diag_standard: Value,
}

impl Templates {
    pub(super) fn load() -> Result<Templates, String> {
        let s100 = parse_sample("servers-details-resp-v2.100.json", NOVA_SERVERS_V2_100)?;
        let s21 = parse_sample("servers-details-resp-v2.1.json", NOVA_SERVERS_V2_1)?;
        let server = first_item("servers-details-resp-v2.100.json", &s100, "servers", 0)?;
        let server21 = first_item("servers-details-resp-v2.1.json", &s21, "servers", 0)?;
        let flavor_v21 = server21
            .get("flavor")
            .cloned()
            .ok_or("fixture servers-details-resp-v2.1.json has no flavor")?;
        let mut admin_attrs = Map::new();
        for k in ADMIN_ONLY {
            if let Some(v) = server21.get(*k) {
                admin_attrs.insert((*k).to_string(), v.clone());
            }
        }
        let ports = parse_sample("ports-list-response.json", NEUTRON_PORTS)?;
        let fips = parse_sample("floating-ips-list-response.json", NEUTRON_FIPS)?;
        let nets = parse_sample("networks-list-response.json", NEUTRON_NETWORKS)?;
        let sgs = parse_sample("security-groups-list-response.json", NEUTRON_SGS)?;
        let list = |doc: &Value, key: &str| -> Vec<Value> {
            doc.get(key)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        Ok(Templates {
            server,
            flavor_v21,
            admin_attrs,
            port: first_item("ports-list-response.json", &ports, "ports", 1)?,
            router_ports: list(&ports, "ports"),
            fip: first_item("floating-ips-list-response.json", &fips, "floatingips", 0)?,
            sample_fips: list(&fips, "floatingips"),
            network: first_item("networks-list-response.json", &nets, "networks", 0)?,
            sample_networks: list(&nets, "networks"),
            sg: first_item(
                "security-groups-list-response.json",
                &sgs,
                "security_groups",
                0,
            )?,
            versions: parse_sample("versions-get-resp.json", NOVA_VERSIONS)?,
            version_v21: parse_sample("v21-version-get-resp.json", NOVA_VERSION_V21)?,
            diag_legacy: parse_sample("server-diagnostics-get-resp-legacy.json", NOVA_DIAG_LEGACY)?,
            diag_standard: parse_sample("server-diagnostics-get-resp-v2.48.json", NOVA_DIAG_V2_48)?,
        })
    }
}

/// Strings of the Neutron samples rewritten so that every address is on loopback.
pub(super) const SAMPLE_REWRITES: [(&str, &str); 5] = [
    ("172.24.4.228", "127.203.4.228"),
    ("172.24.4.227", "127.203.4.227"),
    ("172.24.4.42", "127.203.4.42"),
    ("172.24.4.2", "127.203.4.2"),
    ("10.0.0.1", "127.203.0.1"),
];

/// Fields only an admin sees (Nova's default policy).
pub(super) const ADMIN_ONLY: &[&str] = &[
    "OS-EXT-SRV-ATTR:host",
    "OS-EXT-SRV-ATTR:hypervisor_hostname",
    "OS-EXT-SRV-ATTR:instance_name",
];
