//! nmap's command line for one batch: scan types gated on privileges, timing, and the port spec.

use super::{Capabilities, Settings};
use std::collections::BTreeSet;
use std::time::Duration;

pub(super) fn udp_enabled(s: &Settings, caps: &Capabilities) -> bool {
    !s.udp_ports.is_empty() && caps.privileged
}

pub(super) fn os_enabled(s: &Settings, caps: &Capabilities) -> bool {
    s.os_detection && caps.privileged
}

/// nmap's command line for one batch; targets follow on stdin (`-iL -`).
pub(super) fn args(
    s: &Settings,
    caps: &Capabilities,
    tcp_ports: &[u16],
    ipv6: bool,
) -> Vec<String> {
    let mut a: Vec<String> = Vec::new();
    if caps.privileged && !caps.root {
        a.push("--privileged".into()); // before anything that needs it
    }
    a.extend(["-n", "-Pn", "-sT", "-sV"].map(String::from));
    a.push("--version-intensity".into());
    a.push(s.version_intensity.min(9).to_string());
    a.push(format!("-T{}", s.timing.min(5)));
    a.push("--host-timeout".into());
    a.push(nmap_time(s.host_timeout));
    // The configured rates hold for nmap too: the batches running at once share max_rate, and
    // one host gets at most max_host_rate probes a second.
    if s.max_rate > 0 {
        let share = (s.max_rate / s.parallel_batches.max(1) as u64).max(1);
        a.push("--max-rate".into());
        a.push(share.to_string());
    }
    if s.max_host_rate > 0 {
        // Whole milliseconds, rounded up: never faster than the rate.
        let ms = 1000u64.div_ceil(s.max_host_rate).max(1);
        a.push("--scan-delay".into());
        a.push(format!("{ms}ms"));
    }
    if !s.stats_every.is_zero() {
        a.push("--stats-every".into());
        a.push(nmap_time(s.stats_every));
    }
    let udp: &[u16] = if udp_enabled(s, caps) {
        a.push("-sU".into());
        &s.udp_ports
    } else {
        &[]
    };
    if os_enabled(s, caps) {
        a.push("-O".into());
    }
    if ipv6 {
        a.push("-6".into());
    }
    if s.vulners {
        a.push("--script".into());
        a.push("vulners".into());
    }
    a.push("-p".into());
    a.push(port_spec(tcp_ports, udp));
    a.extend(["-oX", "-", "-iL", "-"].map(String::from));
    a
}

fn nmap_time(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// `T:22,80-82,U:53`: sorted, deduplicated, runs collapsed to ranges; port 0 dropped.
pub(super) fn port_spec(tcp: &[u16], udp: &[u16]) -> String {
    let ranges = |ports: &[u16]| {
        let set: BTreeSet<u16> = ports.iter().copied().filter(|&p| p != 0).collect();
        let mut out: Vec<String> = Vec::new();
        let mut it = set.into_iter().peekable();
        while let Some(start) = it.next() {
            let mut end = start;
            while it.peek() == Some(&end.wrapping_add(1)) && end != u16::MAX {
                end += 1;
                it.next();
            }
            out.push(if start == end {
                start.to_string()
            } else {
                format!("{start}-{end}")
            });
        }
        out.join(",")
    };
    let mut parts = Vec::new();
    if tcp.iter().any(|&p| p != 0) {
        parts.push(format!("T:{}", ranges(tcp)));
    }
    if udp.iter().any(|&p| p != 0) {
        parts.push(format!("U:{}", ranges(udp)));
    }
    parts.join(",")
}
