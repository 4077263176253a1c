//! The global scan scope (`[scope]`): the one filter every address passes before any stage may send
//! to it, whichever source named it (a CIDR group, a cloud's API). `allow` bounds it (empty: what
//! the inventories name), `exclude` holds for every group and cloud, and addresses no scanner
//! should ever be pointed at by an API — unspecified, loopback, link-local, multicast, broadcast —
//! are refused from cloud inventories unless `allow` names them explicitly.

use ipnetwork::IpNetwork;
use std::net::IpAddr;

/// Why an address is out of scope (the `reason` label of `stinger_targets_out_of_scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OutOfScope {
    /// Inside `[scope] exclude`.
    Excluded,
    /// Outside every `[scope] allow` network.
    NotAllowed,
    /// A special address (see [`special`]) from a cloud inventory that `allow` does not name.
    Special(&'static str),
}

impl OutOfScope {
    pub fn as_str(self) -> &'static str {
        match self {
            OutOfScope::Excluded => "excluded",
            OutOfScope::NotAllowed => "not_allowed",
            OutOfScope::Special(kind) => kind,
        }
    }
}

/// The validated `[scope]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub allow: Vec<IpNetwork>,
    pub exclude: Vec<IpNetwork>,
}

/// Where an address comes from: the operator's own CIDR groups, or a cloud API (whose answers are
/// not trusted to name only scannable addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Config,
    Api,
}

/// The kind of special address `ip` is, if it is one no API-provided target should be.
pub fn special(ip: IpAddr) -> Option<&'static str> {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            if o[0] == 0 {
                Some("unspecified")
            } else if a.is_loopback() {
                Some("loopback")
            } else if a.is_link_local() {
                Some("link_local")
            } else if a.is_multicast() || o[0] >= 240 {
                // 240.0.0.0/4 is reserved; 255.255.255.255 is the limited broadcast.
                Some(if a.is_broadcast() {
                    "broadcast"
                } else if a.is_multicast() {
                    "multicast"
                } else {
                    "reserved"
                })
            } else {
                None
            }
        }
        IpAddr::V6(a) => {
            let seg = a.segments();
            if a.is_unspecified() {
                Some("unspecified")
            } else if a.is_loopback() {
                Some("loopback")
            } else if a.is_multicast() {
                Some("multicast")
            } else if seg[0] & 0xffc0 == 0xfe80 {
                Some("link_local")
            } else {
                None
            }
        }
    }
}

impl Scope {
    /// Whether probes may go to `ip`, named by `origin`.
    pub fn check(&self, ip: IpAddr, origin: Origin) -> Result<(), OutOfScope> {
        if self.exclude.iter().any(|n| n.contains(ip)) {
            return Err(OutOfScope::Excluded);
        }
        let allowed = self.allow.iter().any(|n| n.contains(ip));
        if !self.allow.is_empty() && !allowed {
            return Err(OutOfScope::NotAllowed);
        }
        if origin == Origin::Api && !allowed {
            if let Some(kind) = special(ip) {
                return Err(OutOfScope::Special(kind));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn net(s: &str) -> IpNetwork {
        s.parse().unwrap()
    }

    #[test]
    fn an_empty_scope_lets_the_operators_groups_through_and_refuses_special_api_addresses() {
        let s = Scope::default();
        for a in [
            "127.0.0.1",
            "10.1.2.3",
            "0.0.0.0",
            "224.0.0.1",
            "169.254.169.254",
        ] {
            assert_eq!(s.check(ip(a), Origin::Config), Ok(()), "{a}");
        }
        assert_eq!(s.check(ip("203.0.113.5"), Origin::Api), Ok(()));
        assert_eq!(s.check(ip("10.0.0.5"), Origin::Api), Ok(()));
        for (a, kind) in [
            ("0.0.0.0", "unspecified"),
            ("127.0.100.10", "loopback"),
            ("169.254.169.254", "link_local"),
            ("224.0.0.251", "multicast"),
            ("255.255.255.255", "broadcast"),
            ("240.0.0.1", "reserved"),
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("fe80::1", "link_local"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "loopback"),
        ] {
            assert_eq!(
                s.check(ip(a), Origin::Api),
                Err(OutOfScope::Special(kind)),
                "{a}"
            );
        }
    }

    #[test]
    fn allow_bounds_everything_and_names_special_addresses_explicitly() {
        let s = Scope {
            allow: vec![net("127.0.0.0/8"), net("10.0.0.0/8")],
            exclude: vec![net("10.9.0.0/16"), net("127.0.0.53/32")],
        };
        assert_eq!(s.check(ip("10.1.1.1"), Origin::Config), Ok(()));
        assert_eq!(
            s.check(ip("127.0.100.10"), Origin::Api),
            Ok(()),
            "allowed explicitly"
        );
        assert_eq!(
            s.check(ip("192.0.2.1"), Origin::Config),
            Err(OutOfScope::NotAllowed)
        );
        assert_eq!(
            s.check(ip("203.0.113.5"), Origin::Api),
            Err(OutOfScope::NotAllowed)
        );
        // Exclusions win over allow, for every origin.
        assert_eq!(
            s.check(ip("10.9.3.4"), Origin::Config),
            Err(OutOfScope::Excluded)
        );
        assert_eq!(
            s.check(ip("127.0.0.53"), Origin::Api),
            Err(OutOfScope::Excluded)
        );
        // Outside allow, a special address is "not allowed" first.
        assert_eq!(
            s.check(ip("169.254.1.1"), Origin::Api),
            Err(OutOfScope::NotAllowed)
        );
    }
}
