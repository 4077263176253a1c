//! Nova's servers + Neutron's ports, floating IPs, networks and security groups + Keystone's names →
//! the cloud's VMs and the scan targets among their addresses. Pure: the fetched lists come in, the
//! inventory goes out.
//!
//! Identity: a target is `<instance id>/<port id>/<address>`, so state and history follow the VM and
//! its Neutron port, never the address alone — a floating IP moved to another VM starts a new
//! history. Neutron is the authority for addresses (Nova's `addresses` is a cache that can lag);
//! Nova's entries with no Neutron match are kept, with no port.

use super::settings::AddressChoice;
use super::types::{AddressKind, Network, Port, SecurityGroup, Server};
use crate::model::{Target, UnixSeconds, Vm, VmAddress, VmLink, VmTarget};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

/// What the join needs to know of the source's settings.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// The source's name: the target group of its VMs.
    pub group: String,
    pub addresses: AddressChoice,
    /// Server statuses that are scanned (upper case).
    pub statuses: Vec<String>,
    /// Probe fixed addresses from `qdhcp-<network id>`.
    pub namespaces: bool,
    pub scanner_source: Option<IpAddr>,
}

/// What was fetched from one cloud.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    pub servers: Vec<Server>,
    pub ports: Vec<Port>,
    pub floating_ips: Vec<super::types::FloatingIp>,
    pub networks: Vec<Network>,
    pub security_groups: Vec<SecurityGroup>,
    pub project_names: HashMap<String, String>,
    pub user_names: HashMap<String, String>,
    /// Neutron's clock when it answered the listing ([`NetworkInventory::date`]
    /// (super::neutron::NetworkInventory::date)): where the change polls start for Neutron.
    pub neutron_date: Option<jiff::Timestamp>,
}

/// One cloud's inventory: any source's [`Inventory`](crate::inventory::Inventory), under the name
/// the OpenStack code (and its change polls) use.
pub use crate::inventory::Inventory as CloudInventory;

/// The namespace Neutron's DHCP agent keeps for a network.
pub fn dhcp_namespace(network_id: &str) -> String {
    format!("qdhcp-{network_id}")
}

/// The lists a join reads, borrowed: from a fresh fetch ([`Fetched::lists`]) or from the state the
/// change polls keep. Nothing is copied to join them; only what goes into the VMs is.
#[derive(Debug, Clone, Copy)]
pub struct Lists<'a, S, P, F, G>
where
    S: IntoIterator<Item = &'a Server> + Clone,
    P: IntoIterator<Item = &'a Port> + Clone,
    F: IntoIterator<Item = &'a super::types::FloatingIp> + Clone,
    G: IntoIterator<Item = &'a SecurityGroup> + Clone,
{
    pub servers: S,
    pub ports: P,
    pub floating_ips: F,
    pub networks: &'a [Network],
    pub security_groups: G,
    pub project_names: &'a HashMap<String, String>,
    pub user_names: &'a HashMap<String, String>,
}

/// The lists of a fresh fetch, as [`join_lists`] reads them.
pub type FetchedLists<'a> =
    Lists<'a, &'a [Server], &'a [Port], &'a [super::types::FloatingIp], &'a [SecurityGroup]>;

impl Fetched {
    pub fn lists(&self) -> FetchedLists<'_> {
        Lists {
            servers: &self.servers,
            ports: &self.ports,
            floating_ips: &self.floating_ips,
            networks: &self.networks,
            security_groups: &self.security_groups,
            project_names: &self.project_names,
            user_names: &self.user_names,
        }
    }
}

/// Join a fetch's lists (see [`join_lists`]).
pub fn join(
    opts: &JoinOptions,
    f: &Fetched,
    first_seen: &BTreeMap<String, UnixSeconds>,
    now: UnixSeconds,
) -> CloudInventory {
    join_lists(opts, f.lists(), first_seen, now)
}

/// Join the lists, servers in the order given. `first_seen` gives the VMs known before (by id)
/// their first-seen times. The lists are only read: a large cloud's servers are never held twice.
pub fn join_lists<'a, S, P, F, G>(
    opts: &JoinOptions,
    f: Lists<'a, S, P, F, G>,
    first_seen: &BTreeMap<String, UnixSeconds>,
    now: UnixSeconds,
) -> CloudInventory
where
    S: IntoIterator<Item = &'a Server> + Clone,
    P: IntoIterator<Item = &'a Port> + Clone,
    F: IntoIterator<Item = &'a super::types::FloatingIp> + Clone,
    G: IntoIterator<Item = &'a SecurityGroup> + Clone,
{
    let Lists {
        servers,
        ports,
        floating_ips,
        networks,
        security_groups,
        project_names,
        user_names,
    } = f;
    let mut ports_by_device: HashMap<&str, Vec<&Port>> = HashMap::new();
    for p in ports {
        if !p.device_id.is_empty() {
            ports_by_device.entry(&p.device_id).or_default().push(p);
        }
    }
    let networks: HashMap<&str, &Network> = networks.iter().map(|n| (n.id.as_str(), n)).collect();
    // Shared by every scan target whose port has the group.
    let security_groups: Vec<Arc<SecurityGroup>> = security_groups
        .into_iter()
        .map(|g| Arc::new(g.clone()))
        .collect();
    let groups: HashMap<&str, &Arc<SecurityGroup>> =
        security_groups.iter().map(|g| (g.id.as_str(), g)).collect();
    let mut fips_by_port: HashMap<&str, Vec<&super::types::FloatingIp>> = HashMap::new();
    for ip in floating_ips {
        if let Some(port) = &ip.port_id {
            fips_by_port.entry(port).or_default().push(ip);
        }
    }

    let mut inv = CloudInventory {
        vms: Vec::with_capacity(servers.clone().into_iter().size_hint().0),
        targets: Vec::new(),
    };
    for s in servers {
        let scanned = opts
            .statuses
            .iter()
            .any(|st| st.eq_ignore_ascii_case(&s.status));
        let project_name = project_names.get(&s.project_id).cloned();
        // (address, kind, network name, port)
        let mut found: Vec<(IpAddr, AddressKind, String, Option<&Port>)> = Vec::new();
        let ports = ports_by_device
            .get(s.id.as_str())
            .map_or(&[][..], Vec::as_slice);
        for p in ports {
            let net_name = networks
                .get(p.network_id.as_str())
                .map_or_else(|| p.network_id.clone(), |n| n.name.clone());
            for ip in &p.fixed_ips {
                found.push((ip.ip_address, AddressKind::Fixed, net_name.clone(), Some(p)));
            }
            for fip in fips_by_port.get(p.id.as_str()).into_iter().flatten() {
                let net = networks
                    .get(fip.floating_network_id.as_str())
                    .map_or_else(|| net_name.clone(), |n| n.name.clone());
                found.push((fip.floating_ip_address, AddressKind::Floating, net, Some(p)));
            }
        }
        for a in &s.addresses {
            if !found.iter().any(|(ip, ..)| *ip == a.address) {
                // Nova knows it, Neutron did not list it (or Neutron is not the network service).
                let port = ports.iter().copied().find(|p| {
                    a.mac
                        .as_deref()
                        .is_some_and(|m| m.eq_ignore_ascii_case(&p.mac_address))
                });
                found.push((a.address, a.kind, a.network.clone(), port));
            }
        }
        // Sized exactly: most VMs have one or two addresses, and a growing Vec starts at four.
        let mut addresses = Vec::with_capacity(found.len());
        for (address, kind, network, port) in found {
            let wanted = match opts.addresses {
                AddressChoice::Both => true,
                AddressChoice::Fixed => kind == AddressKind::Fixed,
                AddressChoice::Floating => kind == AddressKind::Floating,
            };
            let namespace = (opts.namespaces && kind == AddressKind::Fixed)
                .then(|| port.map(|p| dhcp_namespace(&p.network_id)))
                .flatten();
            let sgs: Vec<&Arc<SecurityGroup>> = port
                .map(|p| {
                    p.security_groups
                        .iter()
                        .filter_map(|id| groups.get(id.as_str()).copied())
                        .collect()
                })
                .unwrap_or_default();
            let host = format!(
                "{}/{}/{}",
                s.id,
                port.map_or("-", |p| p.id.as_str()),
                address
            );
            if scanned && wanted {
                let link = VmLink {
                    vm_id: s.id.clone(),
                    vm_name: s.name.clone(),
                    project_id: s.project_id.clone(),
                    project_name: project_name.clone(),
                    port_id: port.map(|p| p.id.clone()),
                    kind,
                    network: network.clone(),
                    namespace: namespace.clone(),
                };
                let target = Target {
                    id: host.clone(),
                    address,
                    group: opts.group.clone(),
                    vm: Some(Arc::new(VmTarget {
                        link,
                        metadata: s.metadata.clone(),
                        security_groups: sgs.iter().map(|g| Arc::clone(g)).collect(),
                        port_security_enabled: port.is_none_or(|p| p.port_security_enabled),
                        scanner_source: opts.scanner_source,
                    })),
                };
                inv.targets.push((namespace.clone(), target));
            }
            addresses.push(VmAddress {
                address,
                kind,
                network,
                port_id: port.map(|p| p.id.clone()),
                security_groups: sgs.iter().map(|g| g.name.clone()).collect(),
                host: (scanned && wanted).then_some(host),
                namespace,
            });
        }
        let first_seen = first_seen.get(&s.id).copied().unwrap_or(now);
        let user_name = user_names.get(&s.user_id).cloned();
        inv.vms.push(Arc::new(Vm {
            id: s.id.clone(),
            cloud: opts.group.clone(),
            name: s.name.clone(),
            status: s.status.clone(),
            project_id: s.project_id.clone(),
            project_name,
            user_id: s.user_id.clone(),
            user_name,
            metadata: s.metadata.clone(),
            flavor: s.flavor.clone(),
            created: s.created.clone(),
            updated: s.updated.clone(),
            addresses,
            diagnostics: None,
            diagnostics_error: None,
            first_seen,
            last_seen: now,
        }));
    }
    inv
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::openstack::types::{
        Direction, FixedIp, FloatingIp, SecurityGroupRule, ServerAddress,
    };

    fn server(id: &str, status: &str, addrs: &[(&str, AddressKind)]) -> Server {
        Server {
            id: id.into(),
            name: format!("vm-{id}"),
            status: status.into(),
            project_id: "p1".into(),
            user_id: "u1".into(),
            metadata: [("role".into(), "web".into())].into(),
            addresses: addrs
                .iter()
                .map(|(a, k)| ServerAddress {
                    network: "private".into(),
                    address: a.parse().unwrap(),
                    kind: *k,
                    mac: None,
                })
                .collect(),
            flavor: Some("m1.small".into()),
            created: None,
            updated: None,
            host: None,
        }
    }

    fn port(id: &str, device: &str, ip: &str) -> Port {
        Port {
            id: id.into(),
            network_id: "net1".into(),
            device_id: device.into(),
            mac_address: "fa:16:3e:00:00:01".into(),
            fixed_ips: vec![FixedIp {
                ip_address: ip.parse().unwrap(),
            }],
            security_groups: vec!["sg1".into()],
            port_security_enabled: true,
        }
    }

    fn fetched() -> Fetched {
        Fetched {
            servers: vec![
                server("a", "ACTIVE", &[("10.0.0.5", AddressKind::Fixed)]),
                server("b", "SHUTOFF", &[("10.0.0.6", AddressKind::Fixed)]),
            ],
            ports: vec![port("pa", "a", "10.0.0.5"), port("pb", "b", "10.0.0.6")],
            floating_ips: vec![FloatingIp {
                id: "f1".into(),
                floating_ip_address: "203.0.113.5".parse().unwrap(),
                fixed_ip_address: Some("10.0.0.5".parse().unwrap()),
                port_id: Some("pa".into()),
                floating_network_id: "ext".into(),
                router_id: Some("r1".into()),
                project_id: "p1".into(),
                status: "ACTIVE".into(),
            }],
            networks: vec![Network {
                id: "net1".into(),
                name: "private".into(),
                project_id: "p1".into(),
                external: false,
                shared: false,
                subnets: vec![],
            }],
            security_groups: vec![SecurityGroup {
                id: "sg1".into(),
                name: "web".into(),
                project_id: "p1".into(),
                stateful: true,
                rules: vec![SecurityGroupRule {
                    id: "r1".into(),
                    direction: Direction::Ingress,
                    ethertype: "IPv4".into(),
                    protocol: Some("tcp".into()),
                    port_range_min: Some(22),
                    port_range_max: Some(22),
                    remote_ip_prefix: Some("0.0.0.0/0".into()),
                    remote_group_id: None,
                    remote_address_group_id: None,
                }],
            }],
            project_names: HashMap::from([("p1".into(), "web".into())]),
            user_names: HashMap::from([("u1".into(), "alice".into())]),
            neutron_date: None,
        }
    }

    fn opts(addresses: AddressChoice, namespaces: bool) -> JoinOptions {
        JoinOptions {
            group: "prod".into(),
            addresses,
            statuses: vec!["ACTIVE".into()],
            namespaces,
            scanner_source: None,
        }
    }

    #[test]
    fn floating_addresses_of_active_vms_become_targets_keyed_by_vm_and_port() {
        let inv = join(
            &opts(AddressChoice::Floating, false),
            &fetched(),
            &BTreeMap::new(),
            5.0,
        );
        assert_eq!(inv.vms.len(), 2, "every VM is inventoried, scanned or not");
        assert_eq!(inv.targets.len(), 1);
        let (ns, t) = &inv.targets[0];
        assert_eq!(ns, &None);
        assert_eq!(t.id, "a/pa/203.0.113.5");
        assert_eq!(t.group, "prod");
        let vm = t.vm.as_ref().unwrap();
        assert_eq!(vm.link.kind, AddressKind::Floating);
        assert_eq!(vm.link.project_name.as_deref(), Some("web"));
        assert_eq!(vm.security_groups[0].name, "web");
        let a = &inv.vms[0];
        assert_eq!(a.user_name.as_deref(), Some("alice"));
        assert_eq!(a.addresses.len(), 2, "fixed and floating, both listed");
        assert_eq!(
            a.addresses.iter().filter(|x| x.host.is_some()).count(),
            1,
            "only the floating one is scanned"
        );
        assert!(
            inv.vms[1].addresses.iter().all(|x| x.host.is_none()),
            "SHUTOFF is not scanned"
        );
    }

    #[test]
    fn fixed_addresses_get_their_networks_dhcp_namespace() {
        let inv = join(
            &opts(AddressChoice::Both, true),
            &fetched(),
            &BTreeMap::new(),
            5.0,
        );
        let ns: Vec<_> = inv
            .targets
            .iter()
            .map(|(ns, t)| (ns.clone(), t.id.clone()))
            .collect();
        assert!(
            ns.contains(&(Some("qdhcp-net1".into()), "a/pa/10.0.0.5".into())),
            "{ns:?}"
        );
        assert!(ns.contains(&(None, "a/pa/203.0.113.5".into())), "{ns:?}");
    }

    #[test]
    fn a_moved_floating_ip_is_a_new_host() {
        let mut f = fetched();
        let before = join(
            &opts(AddressChoice::Floating, false),
            &f,
            &BTreeMap::new(),
            5.0,
        );
        // Move the floating IP to VM b's port (and make b scanned).
        f.servers[1].status = "ACTIVE".into();
        f.floating_ips[0].port_id = Some("pb".into());
        let after = join(
            &opts(AddressChoice::Floating, false),
            &f,
            &BTreeMap::new(),
            6.0,
        );
        assert_eq!(before.targets[0].1.address, after.targets[0].1.address);
        assert_ne!(before.targets[0].1.id, after.targets[0].1.id);
        assert_eq!(after.targets[0].1.id, "b/pb/203.0.113.5");
    }

    #[test]
    fn nova_only_addresses_are_kept_and_first_seen_survives() {
        let mut f = fetched();
        f.ports.clear();
        f.floating_ips.clear();
        let first = join(
            &opts(AddressChoice::Fixed, false),
            &f,
            &BTreeMap::new(),
            1.0,
        );
        let prev = BTreeMap::from([("a".to_string(), first.vms[0].first_seen)]);
        let inv = join(&opts(AddressChoice::Fixed, false), &f, &prev, 9.0);
        assert_eq!(inv.targets[0].1.id, "a/-/10.0.0.5");
        assert_eq!(inv.vms[0].first_seen, 1.0);
        assert_eq!(inv.vms[0].last_seen, 9.0);
        assert!(inv.targets[0].1.vm.as_ref().unwrap().port_security_enabled);
    }
}
