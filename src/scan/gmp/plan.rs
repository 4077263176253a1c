//! The gvmd target and task for one host set ([`Plan`]): which hosts and ports go in, the stable
//! `stinger-<hash>` name that lets an identical host set reuse its task, and making sure that task
//! exists in gvmd ([`ensure_task`]).

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::{Error, Session, Settings, TaskStatus};

/// Every target and task Stinger creates is named `stinger-<16 hex digits>`.
pub(crate) const NAME_PREFIX: &str = "stinger-";

/// The gvmd target (and task) for one host set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Plan {
    pub(super) name: String,
    pub(super) hosts: Vec<String>,
    pub(super) ports: String,
}

/// 64-bit FNV-1a: stable across builds and Rust versions (unlike `DefaultHasher`).
pub(super) fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// gvmd port_range for TCP ports: `T:22,80,8000-8002` (sorted, runs collapsed); 0 is skipped.
pub(super) fn port_range(ports: &BTreeSet<u16>) -> String {
    let mut out = String::from("T:");
    let mut iter = ports.iter().copied().filter(|&p| p != 0).peekable();
    let mut first = true;
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&end.wrapping_add(1)) && end != u16::MAX {
            end += 1;
            iter.next();
        }
        if !first {
            out.push(',');
        }
        first = false;
        if end == start {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}-{end}"));
        }
    }
    out
}

/// Hosts with at least one open port, the union of their ports, and the stable name of the
/// target/task: `stinger-` + hash of everything that defines them (hosts, ports, config,
/// scanner, alive test), so an identical host set reuses its task. `None` when nothing to scan.
pub(super) fn plan(settings: &Settings, hosts: &[(IpAddr, Vec<u16>)]) -> Option<Plan> {
    let mut addrs: Vec<IpAddr> = hosts
        .iter()
        .filter(|(_, ports)| ports.iter().any(|&p| p != 0))
        .map(|(a, _)| *a)
        .collect();
    addrs.sort_unstable();
    addrs.dedup();
    if addrs.is_empty() {
        return None;
    }
    let ports: BTreeSet<u16> = hosts.iter().flat_map(|(_, p)| p.iter().copied()).collect();
    let hosts: Vec<String> = addrs.iter().map(IpAddr::to_string).collect();
    let ports = port_range(&ports);
    let key = format!(
        "v1\nhosts={}\nports={}\nconfig={}\nscanner={}\nalive={}",
        hosts.join(","),
        ports,
        settings.scan_config,
        settings.scanner,
        settings.alive_test
    );
    Some(Plan {
        name: format!("{NAME_PREFIX}{:016x}", fnv1a64(key.as_bytes())),
        hosts,
        ports,
    })
}

/// Names Stinger gave: `stinger-` and exactly 16 lowercase hex digits. Retention touches no other.
pub(super) fn is_own_name(name: &str) -> bool {
    name.strip_prefix(NAME_PREFIX).is_some_and(|h| {
        h.len() == 16
            && h.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// Ensures the task for `plan` exists; returns its id and whether it existed.
pub(super) async fn ensure_task(
    s: &mut Session,
    settings: &Settings,
    plan: &Plan,
) -> Result<(String, bool), Error> {
    let existing = s.get_tasks_by_name(&plan.name).await?;
    if let Some(t) = existing
        .iter()
        .find(|t| t.name == plan.name && t.status != TaskStatus::DeleteRequested)
    {
        return Ok((t.id.clone(), true));
    }
    let target_id = match s
        .create_target(&plan.name, &plan.hosts, &plan.ports, &settings.alive_test)
        .await
    {
        Ok(id) => id,
        // A target of that name left behind (its task was never created or was deleted):
        // gmp_xml cannot list targets, so make a new one with a distinct name.
        Err(Error::Status {
            code: 400, text, ..
        }) if text.to_ascii_lowercase().contains("exist") => {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            s.create_target(
                &format!("{}-{secs}", plan.name),
                &plan.hosts,
                &plan.ports,
                &settings.alive_test,
            )
            .await?
        }
        Err(e) => return Err(e),
    };
    match s
        .create_task(
            &plan.name,
            &settings.scan_config,
            &target_id,
            &settings.scanner,
        )
        .await
    {
        Ok(id) => Ok((id, false)),
        Err(e) => {
            if s.is_open() {
                if let Err(de) = s.delete_target(&target_id, true).await {
                    tracing::warn!(target_id = %target_id, error = %de, "could not delete the unused gvmd target");
                }
            }
            Err(e)
        }
    }
}
