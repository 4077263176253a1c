//! The state seen before or after a poll: [`CloudState`] with the poll's items laid over it, and a
//! VM's addresses found the way [`join`](crate::inventory::openstack::join) finds them (Neutron
//! first, Nova's cached addresses matched to a port by MAC), so a delta and a re-join agree; and
//! whether one security-group rule covers another.

use super::CloudState;
use crate::inventory::openstack::types::{
    FloatingIp, Port, SecurityGroup, SecurityGroupRule, Server,
};
use ipnetwork::IpNetwork;
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

/// The state with the poll's items laid over it (`None`: removed).
pub(super) struct View<'a> {
    pub(super) state: &'a CloudState,
    pub(super) servers: HashMap<&'a str, Option<&'a Server>>,
    pub(super) ports: HashMap<&'a str, Option<&'a Port>>,
    pub(super) fips: HashMap<&'a str, Option<&'a FloatingIp>>,
    pub(super) groups: HashMap<&'a str, Option<&'a SecurityGroup>>,
}

impl<'a> View<'a> {
    pub(super) fn before(state: &'a CloudState) -> Self {
        View {
            state,
            servers: HashMap::new(),
            ports: HashMap::new(),
            fips: HashMap::new(),
            groups: HashMap::new(),
        }
    }

    pub(super) fn server(&self, id: &str) -> Option<&'a Server> {
        match self.servers.get(id) {
            Some(s) => *s,
            None => self.state.servers.get(id),
        }
    }

    pub(super) fn port(&self, id: &str) -> Option<&'a Port> {
        match self.ports.get(id) {
            Some(p) => *p,
            None => self.state.ports.get(id),
        }
    }

    pub(super) fn fip(&self, id: &str) -> Option<&'a FloatingIp> {
        match self.fips.get(id) {
            Some(f) => *f,
            None => self.state.floating_ips.get(id),
        }
    }

    pub(super) fn group(&self, id: &str) -> Option<&'a SecurityGroup> {
        match self.groups.get(id) {
            Some(g) => *g,
            None => self.state.security_groups.get(id),
        }
    }

    pub(super) fn ports_of(&self, vm: &str) -> Vec<&'a Port> {
        let mut ids: BTreeSet<&str> = self
            .state
            .ports_by_device
            .get(vm)
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        ids.extend(self.ports.keys().copied());
        ids.into_iter()
            .filter_map(|id| self.port(id))
            .filter(|p| p.device_id == vm)
            .collect()
    }

    pub(super) fn fips_of(&self, port: &str) -> Vec<&'a FloatingIp> {
        let mut ids: BTreeSet<&str> = self
            .state
            .fips_by_port
            .get(port)
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        ids.extend(self.fips.keys().copied());
        ids.into_iter()
            .filter_map(|id| self.fip(id))
            .filter(|f| f.port_id.as_deref() == Some(port))
            .collect()
    }

    /// A VM's addresses with their ports, as the join finds them.
    pub(super) fn addresses(&self, vm: &str) -> BTreeSet<(IpAddr, Option<String>)> {
        let mut out = BTreeSet::new();
        let ports = self.ports_of(vm);
        for p in &ports {
            for ip in &p.fixed_ips {
                out.insert((ip.ip_address, Some(p.id.clone())));
            }
            for f in self.fips_of(&p.id) {
                out.insert((f.floating_ip_address, Some(p.id.clone())));
            }
        }
        if let Some(s) = self.server(vm) {
            for a in &s.addresses {
                if !out.iter().any(|(ip, _)| *ip == a.address) {
                    let port = ports.iter().find(|p| {
                        a.mac
                            .as_deref()
                            .is_some_and(|m| m.eq_ignore_ascii_case(&p.mac_address))
                    });
                    out.insert((a.address, port.map(|p| p.id.clone())));
                }
            }
        }
        out
    }

    /// Every port, the poll's over the state's.
    pub(super) fn all_ports(&self) -> impl Iterator<Item = &'a Port> + '_ {
        let state = self.state;
        state
            .ports
            .values()
            .filter(|p| !self.ports.contains_key(p.id.as_str()))
            .chain(self.ports.values().filter_map(|p| *p))
    }

    /// A port's addresses: its fixed IPs and the floating IPs on it.
    pub(super) fn port_addresses(&self, p: &Port) -> Vec<IpAddr> {
        let mut out: Vec<IpAddr> = p.fixed_ips.iter().map(|f| f.ip_address).collect();
        out.extend(self.fips_of(&p.id).iter().map(|f| f.floating_ip_address));
        out
    }
}

/// Whether rule `a` lets through everything rule `b` does (same direction and ethertype).
pub(crate) fn covers(a: &SecurityGroupRule, b: &SecurityGroupRule) -> bool {
    if a.direction != b.direction || !a.ethertype.eq_ignore_ascii_case(&b.ethertype) {
        return false;
    }
    let protocol = match (&a.protocol, &b.protocol) {
        (None, _) => true,
        (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
        (Some(_), None) => false,
    };
    let range = |r: &SecurityGroupRule| {
        (
            r.port_range_min.unwrap_or(0),
            r.port_range_max.or(r.port_range_min).unwrap_or(u16::MAX),
        )
    };
    let ((amin, amax), (bmin, bmax)) = (range(a), range(b));
    let ports = amin <= bmin && amax >= bmax;
    let anywhere = |r: &SecurityGroupRule| {
        r.remote_group_id.is_none()
            && r.remote_address_group_id.is_none()
            && r.remote_ip_prefix
                .as_deref()
                .is_none_or(|p| p.parse::<IpNetwork>().is_ok_and(|n| n.prefix() == 0))
    };
    let remote = anywhere(a)
        || (a.remote_group_id.is_some() && a.remote_group_id == b.remote_group_id)
        || (a.remote_address_group_id.is_some()
            && a.remote_address_group_id == b.remote_address_group_id)
        || match (&a.remote_ip_prefix, &b.remote_ip_prefix) {
            (Some(x), Some(y)) => match (x.parse::<IpNetwork>(), y.parse::<IpNetwork>()) {
                (Ok(x), Ok(y)) => x.prefix() <= y.prefix() && x.contains(y.network()),
                _ => x == y,
            },
            _ => false,
        };
    protocol && ports && remote
}
