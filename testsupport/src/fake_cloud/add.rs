//! Adding to the fake cloud: a server with its Neutron ports, floating IPs and (when missing)
//! networks and security groups, and security groups with their rules, shaped like the samples.

use std::net::IpAddr;

use serde_json::{json, Map, Value};

use super::cloud::Cloud;
use super::samples::{PUBLIC_NET_ID, SAMPLE_ROUTER_ID};
use super::spec::{RuleSpec, SecurityGroupSpec, ServerSpec};
use super::values::{fnv, set_all, uuid};

impl Cloud {
    /// Adds a server with its ports, floating IPs and (if missing) networks and security groups.
    pub fn add_server(&mut self, spec: ServerSpec) -> Result<(), String> {
        self.add_server_inner(spec, true)
    }

    pub(super) fn add_server_inner(
        &mut self,
        spec: ServerSpec,
        reorder: bool,
    ) -> Result<(), String> {
        if spec.id.is_empty() || self.server_index.contains_key(&spec.id) {
            return Err(format!(
                "add_server: server id {:?} is empty or already used; give each server a distinct id",
                spec.id
            ));
        }
        if !spec.floating.is_empty() && spec.fixed.is_empty() {
            return Err(format!(
                "add_server {}: floating IPs need a fixed address to map to; add one to `fixed`",
                spec.id
            ));
        }
        self.seq += 1;
        let seq = self.seq;
        // A server added while the clock is set is booted now: it, its ports and its floating IPs
        // carry the clock's time (as Nova and Neutron stamp what they create), which the change
        // feeds' cursors compare against.
        let created = spec.created.clone().unwrap_or_else(|| self.now());
        let mut sg_ids = Vec::new();
        for name in &spec.security_groups {
            sg_ids.push(self.security_group_id(name, &spec.project_id)?);
        }
        let running = spec.status == "ACTIVE";

        // Neutron: one port per fixed address, floating IPs on them.
        let mut addresses: Map<String, Value> = Map::new();
        let mut port_of_fixed: Vec<(String, String, IpAddr, String)> = Vec::new(); // port, mac, ip, net id
        for (k, (net_name, ip)) in spec.fixed.iter().enumerate() {
            let (net_id, subnet_id) = self.network_for(net_name, &spec.project_id);
            let port_id = uuid(2, seq * 16 + k as u64);
            let mac = format!(
                "fa:16:3e:{:02x}:{:02x}:{:02x}",
                (seq >> 12) & 0xff,
                (seq >> 4) & 0xff,
                ((seq & 0xf) << 4) | (k as u64 & 0xf)
            );
            let mut port = self.t.port.clone();
            set_all(
                &mut port,
                &[
                    ("id", json!(port_id)),
                    ("name", json!("")),
                    ("network_id", json!(net_id)),
                    ("device_id", json!(spec.id)),
                    ("device_owner", json!("compute:nova")),
                    (
                        "fixed_ips",
                        json!([{"ip_address": ip.to_string(), "subnet_id": subnet_id}]),
                    ),
                    ("mac_address", json!(mac)),
                    ("project_id", json!(spec.project_id)),
                    ("tenant_id", json!(spec.project_id)),
                    ("security_groups", json!(sg_ids)),
                    ("port_security_enabled", json!(true)),
                    ("status", json!(if running { "ACTIVE" } else { "DOWN" })),
                    (
                        "dns_assignment",
                        json!([{"hostname": spec.name, "ip_address": ip.to_string(),
                                "fqdn": format!("{}.my-domain.org", spec.name)}]),
                    ),
                    ("dns_name", json!(spec.name)),
                    ("extra_dhcp_opts", json!([])),
                    ("tags", json!([])),
                    ("created_at", json!(created)),
                    ("updated_at", json!(created)),
                    ("qos_network_policy_id", Value::Null),
                    ("qos_policy_id", Value::Null),
                ],
            );
            self.ports.insert(port_id.clone(), port);
            let entry = addresses
                .entry(net_name.clone())
                .or_insert_with(|| json!([]));
            if let Some(list) = entry.as_array_mut() {
                list.push(json!({
                    "addr": ip.to_string(),
                    "OS-EXT-IPS-MAC:mac_addr": mac,
                    "OS-EXT-IPS:type": "fixed",
                    "version": if ip.is_ipv4() { 4 } else { 6 },
                }));
            }
            port_of_fixed.push((port_id, mac, *ip, net_id));
        }
        for (k, fip) in spec.floating.iter().enumerate() {
            let target = k.min(port_of_fixed.len().saturating_sub(1));
            let Some((port_id, mac, fixed_ip, net_id)) = port_of_fixed.get(target).cloned() else {
                continue;
            };
            let fip_id = uuid(3, seq * 16 + k as u64);
            let mut f = self.t.fip.clone();
            set_all(
                &mut f,
                &[
                    ("id", json!(fip_id)),
                    ("floating_ip_address", json!(fip.to_string())),
                    ("fixed_ip_address", json!(fixed_ip.to_string())),
                    ("port_id", json!(port_id)),
                    ("project_id", json!(spec.project_id)),
                    ("tenant_id", json!(spec.project_id)),
                    ("floating_network_id", json!(PUBLIC_NET_ID)),
                    ("router_id", json!(SAMPLE_ROUTER_ID)),
                    ("status", json!("ACTIVE")),
                    ("dns_name", json!("")),
                    ("description", json!("")),
                    ("tags", json!([])),
                    ("port_forwardings", json!([])),
                    ("created_at", json!(created)),
                    ("updated_at", json!(created)),
                    (
                        "port_details",
                        json!({"status": if running { "ACTIVE" } else { "DOWN" }, "name": "",
                               "admin_state_up": true, "network_id": net_id,
                               "device_owner": "compute:nova", "mac_address": mac,
                               "device_id": spec.id}),
                    ),
                ],
            );
            self.floatingips.insert(fip_id, f);
            // Nova lists a floating IP beside the fixed address it maps to.
            let net_name = spec.fixed.get(target).map(|(n, _)| n.clone());
            if let Some(list) = net_name
                .and_then(|n| addresses.get_mut(&n))
                .and_then(Value::as_array_mut)
            {
                list.push(json!({
                    "addr": fip.to_string(),
                    "OS-EXT-IPS-MAC:mac_addr": mac,
                    "OS-EXT-IPS:type": "floating",
                    "version": if fip.is_ipv4() { 4 } else { 6 },
                }));
            }
        }

        // Nova: the v2.100 sample plus the admin-only fields of the v2.1 sample.
        let mut server = self.t.server.clone();
        let (vm_state, power_state) = match spec.status.as_str() {
            "ACTIVE" => ("active", 1),
            "SHUTOFF" => ("stopped", 4),
            "ERROR" => ("error", 0),
            "BUILD" => ("building", 0),
            "PAUSED" => ("paused", 3),
            "SUSPENDED" => ("suspended", 4),
            _ => ("active", 1),
        };
        set_all(
            &mut server,
            &[
                ("id", json!(spec.id)),
                ("name", json!(spec.name)),
                ("tenant_id", json!(spec.project_id)),
                ("user_id", json!(spec.user_id)),
                ("status", json!(spec.status)),
                ("metadata", json!(spec.metadata)),
                ("created", json!(created)),
                ("updated", json!(created)),
                ("addresses", Value::Object(addresses)),
                (
                    "security_groups",
                    json!(spec
                        .security_groups
                        .iter()
                        .map(|n| json!({"name": n}))
                        .collect::<Vec<_>>()),
                ),
                (
                    "hostId",
                    json!(format!("{:056x}", (seq as u128) * 0x9e37_79b9)),
                ),
                ("OS-EXT-SRV-ATTR:hostname", json!(spec.name)),
                ("OS-EXT-STS:vm_state", json!(vm_state)),
                ("OS-EXT-STS:power_state", json!(power_state)),
                ("accessIPv4", json!("")),
                ("accessIPv6", json!("")),
            ],
        );
        if let Some(o) = server.as_object_mut() {
            for (k, v) in &self.t.admin_attrs {
                o.insert(k.clone(), v.clone());
            }
            o.insert(
                "OS-EXT-SRV-ATTR:instance_name".into(),
                json!(format!("instance-{seq:08x}")),
            );
        }
        let index = self.servers.len();
        self.servers.push(server);
        self.server_index.insert(spec.id.clone(), index);
        self.order.push(index);
        if reorder {
            self.reorder();
        }
        Ok(())
    }

    /// Adds a security group; returns its id.
    pub fn add_security_group(&mut self, spec: SecurityGroupSpec) -> Result<String, String> {
        self.seq += 1;
        let id = spec.id.clone().unwrap_or_else(|| uuid(4, self.seq));
        if self.security_groups.contains_key(&id) {
            return Err(format!("add_security_group: id {id} already used"));
        }
        let rules = spec.rules.clone().unwrap_or_else(|| {
            let mut out = Vec::new();
            for dir in ["egress", "ingress"] {
                for eth in ["IPv6", "IPv4"] {
                    out.push(RuleSpec {
                        direction: dir.into(),
                        ethertype: eth.into(),
                        protocol: None,
                        port_range_min: None,
                        port_range_max: None,
                        remote_ip_prefix: None,
                        remote_group_id: (dir == "ingress").then(|| id.clone()),
                    });
                }
            }
            out
        });
        let rule_template = self
            .t
            .sg
            .get("security_group_rules")
            .and_then(|r| r.get(0))
            .cloned()
            .unwrap_or_else(|| json!({}));
        let mut rule_values = Vec::new();
        for (k, r) in rules.iter().enumerate() {
            let mut v = rule_template.clone();
            set_all(
                &mut v,
                &[
                    ("id", json!(uuid(5, self.seq * 64 + k as u64))),
                    ("direction", json!(r.direction)),
                    ("ethertype", json!(r.ethertype)),
                    ("protocol", json!(r.protocol)),
                    ("port_range_min", json!(r.port_range_min)),
                    ("port_range_max", json!(r.port_range_max)),
                    ("remote_ip_prefix", json!(r.remote_ip_prefix)),
                    ("remote_group_id", json!(r.remote_group_id)),
                    ("remote_address_group_id", Value::Null),
                    ("security_group_id", json!(id)),
                    ("project_id", json!(spec.project_id)),
                    ("tenant_id", json!(spec.project_id)),
                    ("tags", json!([])),
                ],
            );
            rule_values.push(v);
        }
        let mut sg = self.t.sg.clone();
        set_all(
            &mut sg,
            &[
                ("id", json!(id)),
                ("name", json!(spec.name)),
                ("description", json!(spec.name)),
                ("project_id", json!(spec.project_id)),
                ("tenant_id", json!(spec.project_id)),
                ("stateful", json!(spec.stateful)),
                ("security_group_rules", Value::Array(rule_values)),
                ("tags", json!([])),
            ],
        );
        self.security_groups.insert(id.clone(), sg);
        Ok(id)
    }

    fn security_group_id(&mut self, name: &str, project: &str) -> Result<String, String> {
        let found = self.security_groups.iter().find(|(_, g)| {
            g.get("name").and_then(Value::as_str) == Some(name)
                && g.get("project_id").and_then(Value::as_str) == Some(project)
        });
        if let Some((id, _)) = found {
            return Ok(id.clone());
        }
        self.add_security_group(SecurityGroupSpec {
            id: None,
            name: name.to_string(),
            project_id: project.to_string(),
            stateful: true,
            rules: None,
        })
    }

    /// (network id, subnet id) of the network called `name`, created in `project` if missing.
    fn network_for(&mut self, name: &str, project: &str) -> (String, String) {
        let found = self
            .networks
            .iter()
            .find(|(_, n)| n.get("name").and_then(Value::as_str) == Some(name));
        if let Some((id, n)) = found {
            let subnet = n
                .get("subnets")
                .and_then(|s| s.get(0))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            return (id.clone(), subnet);
        }
        self.seq += 1;
        let id = uuid(6, self.seq);
        let net = self.network_json(&id, name, project, false, false);
        let subnet = uuid(7, self.seq);
        let mut net = net;
        set_all(&mut net, &[("subnets", json!([subnet]))]);
        self.networks.insert(id.clone(), net);
        (id, subnet)
    }

    pub(super) fn network_json(
        &self,
        id: &str,
        name: &str,
        project: &str,
        external: bool,
        shared: bool,
    ) -> Value {
        let mut n = self.t.network.clone();
        set_all(
            &mut n,
            &[
                ("id", json!(id)),
                ("name", json!(name)),
                ("project_id", json!(project)),
                ("tenant_id", json!(project)),
                ("router:external", json!(external)),
                ("shared", json!(shared)),
                ("subnets", json!([uuid(7, fnv(id))])),
                ("qos_policy_id", Value::Null),
            ],
        );
        n
    }
}
