//! Changing the fake cloud while it serves, as a tenant or Nova would: removing a server (kept as
//! `DELETED` for `changes-since`), its status, floating IPs, security-group rules and port
//! security. Every change is stamped with the cloud's clock.

use std::collections::HashSet;
use std::net::IpAddr;

use serde_json::{json, Value};

use super::cloud::Cloud;
use super::samples::{PUBLIC_NET_ID, SAMPLE_ROUTER_ID};
use super::spec::RuleSpec;
use super::values::{set_all, touch_revision, uuid};

impl Cloud {
    /// Removes a server, its ports, and unmaps its floating IPs (they stay, unassociated).
    pub fn remove_server(&mut self, id: &str) -> bool {
        let Some(index) = self.server_index.remove(id) else {
            return false;
        };
        let now = self.now();
        let mut gone = self.servers.remove(index);
        set_all(
            &mut gone,
            &[
                ("status", json!("DELETED")),
                ("OS-EXT-STS:vm_state", json!("deleted")),
                ("updated", json!(now)),
            ],
        );
        self.deleted.push(gone);
        self.server_index = self
            .servers
            .iter()
            .enumerate()
            .filter_map(|(i, s)| Some((s.get("id")?.as_str()?.to_string(), i)))
            .collect();
        self.order = (0..self.servers.len()).collect();
        self.reorder();
        let gone: HashSet<String> = self
            .ports
            .iter()
            .filter(|(_, p)| p.get("device_id").and_then(Value::as_str) == Some(id))
            .map(|(k, _)| k.clone())
            .collect();
        self.ports.retain(|k, _| !gone.contains(k));
        for f in self.floatingips.values_mut() {
            let mapped = f
                .get("port_id")
                .and_then(Value::as_str)
                .is_some_and(|p| gone.contains(p));
            if mapped {
                set_all(
                    f,
                    &[
                        ("port_id", Value::Null),
                        ("fixed_ip_address", Value::Null),
                        ("port_details", Value::Null),
                        ("status", json!("DOWN")),
                        ("updated_at", json!(now)),
                    ],
                );
            }
        }
        self.diagnostics.remove(id);
        true
    }

    /// Sets a server's `status` (and its ports' status).
    pub fn set_status(&mut self, id: &str, status: &str) -> bool {
        let Some(&i) = self.server_index.get(id) else {
            return false;
        };
        let now = self.now();
        if let Some(s) = self.servers.get_mut(i) {
            set_all(s, &[("status", json!(status)), ("updated", json!(now))]);
        }
        let port_status = if status == "ACTIVE" { "ACTIVE" } else { "DOWN" };
        for p in self.ports.values_mut() {
            if p.get("device_id").and_then(Value::as_str) == Some(id) {
                set_all(
                    p,
                    &[("status", json!(port_status)), ("updated_at", json!(now))],
                );
            }
        }
        true
    }

    /// Associates a new floating IP `ip` with the server's first port (Nova lists it beside that
    /// port's fixed address); returns its id.
    pub fn associate_floating_ip(&mut self, server_id: &str, ip: IpAddr) -> Result<String, String> {
        let port_id = self.server_ports(server_id).into_iter().next().ok_or_else(|| {
            format!("associate_floating_ip: server {server_id:?} has no port; add it with a fixed address")
        })?;
        let port = self.ports.get(&port_id).cloned().unwrap_or(Value::Null);
        let fixed = port
            .pointer("/fixed_ips/0/ip_address")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let mac = port.get("mac_address").cloned().unwrap_or(Value::Null);
        self.seq += 1;
        let (now, fip_id) = (self.now(), uuid(3, self.seq * 16 + 15));
        let mut f = self.t.fip.clone();
        set_all(
            &mut f,
            &[
                ("id", json!(fip_id)),
                ("floating_ip_address", json!(ip.to_string())),
                ("fixed_ip_address", json!(fixed)),
                ("port_id", json!(port_id)),
                (
                    "project_id",
                    port.get("project_id").cloned().unwrap_or(Value::Null),
                ),
                (
                    "tenant_id",
                    port.get("project_id").cloned().unwrap_or(Value::Null),
                ),
                ("floating_network_id", json!(PUBLIC_NET_ID)),
                ("router_id", json!(SAMPLE_ROUTER_ID)),
                ("status", json!("ACTIVE")),
                ("port_details", Value::Null),
                ("created_at", json!(now)),
                ("updated_at", json!(now)),
            ],
        );
        self.floatingips.insert(fip_id.clone(), f);
        if let Some(nets) = self
            .server_index
            .get(server_id)
            .and_then(|&i| self.servers.get_mut(i))
            .and_then(|s| s.get_mut("addresses"))
            .and_then(Value::as_object_mut)
        {
            let list = nets.values_mut().find(|l| {
                l.as_array().is_some_and(|a| {
                    a.iter()
                        .any(|x| x.get("addr").and_then(Value::as_str) == Some(&fixed))
                })
            });
            if let Some(list) = list.and_then(Value::as_array_mut) {
                list.push(
                    json!({"addr": ip.to_string(), "OS-EXT-IPS-MAC:mac_addr": mac,
                                 "OS-EXT-IPS:type": "floating",
                                 "version": if ip.is_ipv4() { 4 } else { 6 }}),
                );
            }
        }
        Ok(fip_id)
    }

    /// Adds a rule to a security group (stamping the rule and the group); returns the rule id.
    pub fn add_security_group_rule(
        &mut self,
        group_id: &str,
        rule: RuleSpec,
    ) -> Result<String, String> {
        self.seq += 1;
        let (now, rule_id) = (self.now(), uuid(5, self.seq * 64 + 63));
        let template = self
            .t
            .sg
            .get("security_group_rules")
            .and_then(|r| r.get(0))
            .cloned()
            .unwrap_or_else(|| json!({}));
        let Some(group) = self.security_groups.get_mut(group_id) else {
            return Err(format!(
                "add_security_group_rule: no security group {group_id:?}"
            ));
        };
        let project = group.get("project_id").cloned().unwrap_or(Value::Null);
        let mut v = template;
        set_all(
            &mut v,
            &[
                ("id", json!(rule_id)),
                ("direction", json!(rule.direction)),
                ("ethertype", json!(rule.ethertype)),
                ("protocol", json!(rule.protocol)),
                ("port_range_min", json!(rule.port_range_min)),
                ("port_range_max", json!(rule.port_range_max)),
                ("remote_ip_prefix", json!(rule.remote_ip_prefix)),
                ("remote_group_id", json!(rule.remote_group_id)),
                ("remote_address_group_id", Value::Null),
                ("security_group_id", json!(group_id)),
                ("project_id", project.clone()),
                ("tenant_id", project),
                ("created_at", json!(now)),
                ("updated_at", json!(now)),
            ],
        );
        if let Some(list) = group
            .get_mut("security_group_rules")
            .and_then(Value::as_array_mut)
        {
            list.push(v);
        }
        touch_revision(group, &now);
        Ok(rule_id)
    }

    /// Deletes a rule (a hard delete, as in Neutron: only its group's `updated_at` tells).
    pub fn remove_security_group_rule(&mut self, rule_id: &str) -> bool {
        let now = self.now();
        for g in self.security_groups.values_mut() {
            let Some(list) = g
                .get_mut("security_group_rules")
                .and_then(Value::as_array_mut)
            else {
                continue;
            };
            let before = list.len();
            list.retain(|r| r.get("id").and_then(Value::as_str) != Some(rule_id));
            if list.len() != before {
                touch_revision(g, &now);
                return true;
            }
        }
        false
    }

    /// Sets a port's `port_security_enabled` (stamping it).
    pub fn set_port_security(&mut self, port_id: &str, enabled: bool) -> bool {
        let now = self.now();
        match self.ports.get_mut(port_id) {
            Some(p) => {
                set_all(p, &[("port_security_enabled", json!(enabled))]);
                touch_revision(p, &now);
                true
            }
            None => false,
        }
    }
}
