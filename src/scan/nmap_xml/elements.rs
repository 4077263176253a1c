//! Start-tag handlers: each reads one element's attributes into the run, host or port being
//! built (`<nmaprun>`, `<taskprogress>`, `<runstats>`, `<host>`, `<port>`, `<service>`, `<osmatch>`).

use std::borrow::Cow;

use quick_xml::events::BytesStart;

use super::parser::{non_empty, parse_num, Ctx, Parser, PendingPort};
use super::{
    AddrKind, Address, Error, ExitStatus, ExtraPorts, Finished, Host, HostCounts, HostStatus,
    OsMatch, Port, PortState, Protocol, Service, TaskProgress,
};

impl Parser {
    pub(super) fn run_attrs(&mut self, e: &BytesStart<'_>) -> Result<(), Error> {
        let (mut version, mut args, mut start) = (None, None, None);
        self.attrs(e, &["version", "args", "start"], |k, v| match k {
            "version" => version = Some(v.into_owned()),
            "args" => args = Some(v.into_owned()),
            _ => start = v.parse().ok(),
        })?;
        self.out.scanner_version = version;
        self.out.args = args;
        self.out.start = start;
        Ok(())
    }

    pub(super) fn task_progress(&mut self, e: &BytesStart<'_>) -> Result<Ctx, Error> {
        let (mut task, mut percent, mut remaining, mut etc) = (None, None, None, None);
        self.attrs(
            e,
            &["task", "percent", "remaining", "etc"],
            |k, v| match k {
                "task" => task = Some(v.into_owned()),
                "percent" => percent = Some(v),
                "remaining" => remaining = v.parse().ok(),
                _ => etc = v.parse().ok(),
            },
        )?;
        let task = task.ok_or_else(|| self.missing("taskprogress", "task"))?;
        let percent = percent.ok_or_else(|| self.missing("taskprogress", "percent"))?;
        let percent = parse_num(&percent, |p: &f64| p.is_finite())
            .ok_or_else(|| self.invalid("taskprogress", "percent", &percent))?;
        let (progress, max) = (&mut self.out.progress, self.lim.max_list_len);
        if max == 0 {
            return Ok(Ctx::Skip);
        }
        if progress.len() >= max {
            progress.drain(..progress.len().div_ceil(2)); // keep the newest half; O(1) amortised
        }
        progress.push(TaskProgress {
            task,
            percent,
            remaining,
            etc,
        });
        Ok(Ctx::Skip)
    }

    pub(super) fn finished(&mut self, e: &BytesStart<'_>) -> Result<Ctx, Error> {
        let mut f = Finished {
            time: None,
            elapsed: None,
            exit: ExitStatus::Unknown,
            error_message: None,
            summary: None,
        };
        self.attrs(
            e,
            &["time", "elapsed", "exit", "errormsg", "summary"],
            |k, v| match k {
                "time" => f.time = v.parse().ok(),
                "elapsed" => f.elapsed = parse_num(&v, |x: &f64| x.is_finite()),
                "exit" => {
                    f.exit = match &*v {
                        "success" => ExitStatus::Success,
                        "error" => ExitStatus::Error,
                        _ => ExitStatus::Unknown,
                    }
                }
                "errormsg" => f.error_message = non_empty(v),
                _ => f.summary = non_empty(v),
            },
        )?;
        self.out.finished = Some(f);
        Ok(Ctx::Skip)
    }

    pub(super) fn host_counts(&mut self, e: &BytesStart<'_>) -> Result<Ctx, Error> {
        // DTD: up and down default to "0", total is required.
        let (mut up, mut down, mut total) = (None, None, None);
        self.attrs(e, &["up", "down", "total"], |k, v| match k {
            "up" => up = Some(v),
            "down" => down = Some(v),
            _ => total = Some(v),
        })?;
        let num = |attr: &'static str, v: Option<Cow<'_, str>>| match v {
            None if attr == "total" => Err(self.missing("hosts", attr)),
            None => Ok(0),
            Some(v) => v
                .parse::<u64>()
                .map_err(|_| self.invalid("hosts", attr, &v)),
        };
        let counts = HostCounts {
            up: num("up", up)?,
            down: num("down", down)?,
            total: num("total", total)?,
        };
        self.out.host_counts = Some(counts);
        Ok(Ctx::Skip)
    }

    pub(super) fn start_host(&mut self) -> Result<Ctx, Error> {
        if self.hosts_done >= self.lim.max_hosts {
            return Err(self.limit("hosts", self.lim.max_hosts));
        }
        self.host = Some(Host {
            status: HostStatus::Unknown,
            status_reason: None,
            addresses: Vec::new(),
            hostnames: Vec::new(),
            ports: Vec::new(),
            extraports: Vec::new(),
            os_matches: Vec::new(),
            complete: false,
        });
        Ok(Ctx::Host)
    }

    pub(super) fn status(&mut self, e: &BytesStart<'_>) -> Result<Ctx, Error> {
        let (mut state, mut reason) = (None, None);
        self.attrs(e, &["state", "reason"], |k, v| match k {
            "state" => state = Some(v),
            _ => reason = non_empty(v),
        })?;
        let status = match state.as_deref() {
            Some("up") => HostStatus::Up,
            Some("down") => HostStatus::Down,
            Some("unknown") => HostStatus::Unknown,
            Some("skipped") => HostStatus::Skipped,
            Some(other) => return Err(self.invalid("status", "state", other)),
            None => return Err(self.missing("status", "state")),
        };
        if let Some(h) = self.host.as_mut() {
            h.status = status;
            h.status_reason = reason;
        }
        Ok(Ctx::Skip)
    }

    pub(super) fn address(&mut self, e: &BytesStart<'_>) -> Result<Ctx, Error> {
        let (mut addr, mut kind, mut vendor) = (None, AddrKind::Ipv4, None);
        self.attrs(e, &["addr", "addrtype", "vendor"], |k, v| match k {
            "addr" => addr = Some(v.into_owned()),
            "addrtype" => {
                kind = match &*v {
                    "ipv4" => AddrKind::Ipv4,
                    "ipv6" => AddrKind::Ipv6,
                    "mac" => AddrKind::Mac,
                    _ => AddrKind::Other,
                }
            }
            _ => vendor = non_empty(v),
        })?;
        let addr = addr.ok_or_else(|| self.missing("address", "addr"))?;
        let max = self.lim.max_list_len;
        if let Some(h) = self.host.as_mut() {
            if h.addresses.len() >= max {
                return Err(self.limit("addresses", max));
            }
            h.addresses.push(Address { addr, kind, vendor });
        }
        Ok(Ctx::Skip)
    }

    pub(super) fn hostname(&mut self, e: &BytesStart<'_>) -> Result<Ctx, Error> {
        let mut name = None;
        self.attrs(e, &["name"], |_, v| name = non_empty(v))?;
        let max = self.lim.max_list_len;
        if let (Some(h), Some(name)) = (self.host.as_mut(), name) {
            if h.hostnames.len() >= max {
                return Err(self.limit("hostnames", max));
            }
            h.hostnames.push(name);
        }
        Ok(Ctx::Skip)
    }

    pub(super) fn extraports(&mut self, e: &BytesStart<'_>) -> Result<Ctx, Error> {
        let (mut state, mut count) = (None, None);
        self.attrs(e, &["state", "count"], |k, v| match k {
            "state" => state = Some(v.into_owned()),
            _ => count = Some(v),
        })?;
        let state = state.ok_or_else(|| self.missing("extraports", "state"))?;
        let count = count.ok_or_else(|| self.missing("extraports", "count"))?;
        let count = count
            .parse()
            .map_err(|_| self.invalid("extraports", "count", &count))?;
        let max = self.lim.max_list_len;
        if let Some(h) = self.host.as_mut() {
            if h.extraports.len() >= max {
                return Err(self.limit("extraports", max));
            }
            h.extraports.push(ExtraPorts { state, count });
        }
        Ok(Ctx::Skip)
    }

    /// Design choice: a `portid` that is not a u16 (nmap never writes one; the vulners
    /// golden fixture has the placeholder "TARGET_PORT") is `Error::InvalidValue`, not a
    /// skipped port. A port we cannot identify must not silently vanish from the exposure
    /// report; `parse_partial` still returns the hosts completed before it.
    pub(super) fn start_port(&mut self, e: &BytesStart<'_>) -> Result<Ctx, Error> {
        let n_ports = self.host.as_ref().map_or(0, |h| h.ports.len());
        if n_ports >= self.lim.max_ports_per_host {
            return Err(self.limit("ports", self.lim.max_ports_per_host));
        }
        let (mut proto, mut portid) = (None, None);
        self.attrs(e, &["protocol", "portid"], |k, v| match k {
            "protocol" => proto = Some(v),
            _ => portid = Some(v),
        })?;
        let protocol = match proto.as_deref() {
            Some("tcp") => Protocol::Tcp,
            Some("udp") => Protocol::Udp,
            Some("sctp") => Protocol::Sctp,
            Some("ip") => Protocol::Ip,
            Some(other) => return Err(self.invalid("port", "protocol", other)),
            None => return Err(self.missing("port", "protocol")),
        };
        let portid = portid.ok_or_else(|| self.missing("port", "portid"))?;
        let port = portid
            .parse()
            .map_err(|_| self.invalid("port", "portid", &portid))?;
        self.port = Some(PendingPort {
            protocol,
            port,
            state: None,
            reason: None,
            service: None,
            vulns: Vec::new(),
            scripts: 0,
            at: self.at,
        });
        Ok(Ctx::Port)
    }

    pub(super) fn port_state(&mut self, e: &BytesStart<'_>) -> Result<Ctx, Error> {
        let (mut state, mut reason) = (None, None);
        self.attrs(e, &["state", "reason"], |k, v| match k {
            "state" => state = Some(v),
            _ => reason = non_empty(v),
        })?;
        let state = match state.as_deref() {
            Some("open") => PortState::Open,
            Some("closed") => PortState::Closed,
            Some("filtered") => PortState::Filtered,
            Some("unfiltered") => PortState::Unfiltered,
            Some("open|filtered") => PortState::OpenFiltered,
            Some("closed|filtered") => PortState::ClosedFiltered,
            Some(other) => return Err(self.invalid("state", "state", other)),
            None => return Err(self.missing("state", "state")),
        };
        if let Some(p) = self.port.as_mut() {
            p.state = Some(state);
            p.reason = reason;
        }
        Ok(Ctx::Skip)
    }

    pub(super) fn service(&mut self, e: &BytesStart<'_>) -> Result<Ctx, Error> {
        let mut s = Service::default();
        let wanted = [
            "name",
            "product",
            "version",
            "extrainfo",
            "method",
            "conf",
            "tunnel",
            "ostype",
        ];
        self.attrs(e, &wanted, |k, v| match k {
            "name" => s.name = non_empty(v),
            "product" => s.product = non_empty(v),
            "version" => s.version = non_empty(v),
            "extrainfo" => s.extrainfo = non_empty(v),
            "method" => s.method = non_empty(v),
            "conf" => s.confidence = v.parse().ok(),
            "tunnel" => s.tunnel = non_empty(v),
            _ => s.ostype = non_empty(v),
        })?;
        if let Some(p) = self.port.as_mut() {
            p.service = Some(s);
        }
        Ok(Ctx::Service)
    }

    pub(super) fn finish_port(&mut self) -> Result<(), Error> {
        let Some(p) = self.port.take() else {
            return Ok(());
        };
        let Some(state) = p.state else {
            return Err(Error::Missing {
                offset: p.at,
                element: "port",
                attribute: "state",
            });
        };
        if let Some(h) = self.host.as_mut() {
            h.ports.push(Port {
                protocol: p.protocol,
                port: p.port,
                state,
                reason: p.reason,
                service: p.service,
                vulns: p.vulns,
            });
        }
        Ok(())
    }

    pub(super) fn start_osmatch(&mut self, e: &BytesStart<'_>) -> Result<Ctx, Error> {
        let (mut name, mut accuracy) = (None, None);
        self.attrs(e, &["name", "accuracy"], |k, v| match k {
            "name" => name = Some(v.into_owned()),
            _ => accuracy = Some(v),
        })?;
        let name = name.ok_or_else(|| self.missing("osmatch", "name"))?;
        let acc = accuracy.ok_or_else(|| self.missing("osmatch", "accuracy"))?;
        let accuracy = parse_num(&acc, |a: &u8| *a <= 100)
            .ok_or_else(|| self.invalid("osmatch", "accuracy", &acc))?;
        self.osmatch = Some(OsMatch {
            name,
            accuracy,
            cpes: Vec::new(),
        });
        Ok(Ctx::OsMatch)
    }
}
