//! One nmap process: spawn it, feed it the targets, read its XML (following its progress) under
//! the batch timeout or until cancelled, kill it if need be, and turn its output into results.

use super::args::{args, os_enabled};
use super::plan::Batch;
use super::task_progress::{TaskScan, Tick};
use super::{spawn_error, BatchOutcome, Error, HostServices, Shared};
use crate::scan::nmap_xml::{self, AddrKind, HostStatus, Limits, NmapRun, Protocol};
use std::collections::BTreeSet;
use std::io;
use std::net::IpAddr;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdout};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Most XML one nmap process may write; beyond it the batch is killed.
const MAX_XML_BYTES: usize = 64 << 20;
/// stderr kept for error messages (the rest is drained and dropped).
pub(super) const MAX_STDERR_BYTES: usize = 64 << 10;
/// How long a killed nmap gets to be reaped and its pipes drained.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// How a batch's nmap ended.
enum End {
    Exited(ExitStatus),
    TimedOut,
    TooLarge,
    ReadFailed(io::Error),
    Cancelled,
}

pub(super) async fn run_batch(
    sh: Arc<Shared>,
    b: Batch,
    cancel: CancellationToken,
) -> BatchOutcome {
    let started = Instant::now();
    let fail = |e: Error| BatchOutcome {
        hosts: Vec::new(),
        errors: vec![e],
        failed: true,
        cancelled: false,
    };
    let argv = args(&sh.settings, &sh.caps, &b.tcp_ports, b.ipv6);
    tracing::debug!(batch = b.index, hosts = b.hosts.len(), args = ?argv, "starting nmap");
    let mut child = match super::nmap_command(&sh.settings.path)
        .args(&argv)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return fail(spawn_error(&sh.settings.path, e)),
    };
    let (Some(mut stdin), Some(mut stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return fail(Error::Nmap {
            message: "nmap started without its pipes".into(),
        });
    };
    // Both end on their own once nmap exits or is killed.
    let targets: String = b.hosts.keys().map(|a| format!("{a}\n")).collect();
    tokio::spawn(async move {
        let _ = stdin.write_all(targets.as_bytes()).await;
        let _ = stdin.shutdown().await;
    });
    let stderr_task = tokio::spawn(async move {
        let mut buf = Vec::new();
        read_capped(stderr, &mut buf, MAX_STDERR_BYTES).await;
        buf
    });

    let mut out = Vec::new();
    let mut ticks = TaskScan::default();
    let end = {
        let mut on_tick = |t: Tick| {
            let overall = sh.set_fraction(b.index, Some(t.percent / 100.0));
            tracing::info!(
                batch = b.index,
                hosts = b.hosts.len(),
                task = %t.task,
                task_percent = t.percent,
                remaining_s = ?t.remaining,
                overall_percent = format!("{overall:.1}"),
                "nmap progress"
            );
        };
        let io = async {
            match read_xml(&mut stdout, &mut out, &mut ticks, &mut on_tick).await {
                Ok(false) => match child.wait().await {
                    Ok(st) => End::Exited(st),
                    Err(e) => End::ReadFailed(e),
                },
                Ok(true) => End::TooLarge,
                Err(e) => End::ReadFailed(e),
            }
        };
        tokio::select! {
            e = io => e,
            _ = tokio::time::sleep(sh.settings.batch_timeout) => End::TimedOut,
            _ = cancel.cancelled() => End::Cancelled,
        }
    };
    if !matches!(end, End::Exited(_)) {
        kill(&mut child).await;
    }
    if matches!(end, End::TimedOut) {
        // Keep whatever nmap wrote before it died: finished hosts are still good.
        let _ = tokio::time::timeout(
            KILL_GRACE,
            read_xml(&mut stdout, &mut out, &mut ticks, &mut |_| {}),
        )
        .await;
    }
    sh.set_fraction(b.index, None);
    if matches!(end, End::Cancelled) {
        return BatchOutcome {
            hosts: Vec::new(),
            errors: Vec::new(),
            failed: false,
            cancelled: true,
        };
    }
    let stderr = match tokio::time::timeout(KILL_GRACE, stderr_task).await {
        Ok(Ok(buf)) => String::from_utf8_lossy(&buf).trim().to_string(),
        _ => String::new(),
    };
    let (doc, parse_err) = nmap_xml::parse_partial(&out[..], &Limits::default());
    let exit_err = match &end {
        End::Exited(status) => exit_error(&doc, parse_err, *status, &stderr),
        _ => None,
    };
    let (hosts, mut errors) = collect(doc, &b, &sh);
    let batch_err = match end {
        End::TimedOut => {
            let finished: BTreeSet<IpAddr> = hosts
                .iter()
                .map(|h| h.address)
                .chain(errors.iter().filter_map(|e| match e {
                    Error::HostTimeout { address, .. } => Some(*address),
                    _ => None,
                }))
                .collect();
            Some(Error::Timeout {
                hosts: b
                    .hosts
                    .keys()
                    .filter(|a| !finished.contains(a))
                    .copied()
                    .collect(),
                after: sh.settings.batch_timeout,
            })
        }
        End::TooLarge => Some(Error::OutputTooLarge {
            limit: MAX_XML_BYTES,
        }),
        End::ReadFailed(e) => Some(Error::Output {
            source: nmap_xml::Error::Io {
                offset: out.len() as u64,
                message: e.to_string(),
            },
        }),
        End::Exited(_) => exit_err,
        End::Cancelled => None,
    };
    let failed = batch_err.is_some();
    match &batch_err {
        Some(e) => tracing::warn!(
            batch = b.index,
            hosts = b.hosts.len(),
            finished = hosts.len(),
            error = %e,
            stderr = %clip(&stderr, 2000),
            "nmap batch failed; hosts it finished are kept"
        ),
        None => tracing::info!(
            batch = b.index,
            hosts = b.hosts.len(),
            finished = hosts.len(),
            elapsed_s = started.elapsed().as_secs(),
            "nmap batch done"
        ),
    }
    if !stderr.is_empty() && !failed {
        tracing::debug!(batch = b.index, stderr = %clip(&stderr, 2000), "nmap stderr");
    }
    errors.extend(batch_err);
    BatchOutcome {
        hosts,
        errors,
        failed,
        cancelled: false,
    }
}

/// Kills nmap and reaps it (bounded: a process stuck in the kernel is left to tokio's reaper).
async fn kill(child: &mut Child) {
    let _ = child.start_kill();
    let _ = tokio::time::timeout(KILL_GRACE, child.wait()).await;
}

fn exit_error(
    doc: &NmapRun,
    parse_err: Option<nmap_xml::Error>,
    status: ExitStatus,
    stderr: &str,
) -> Option<Error> {
    let fallback = || {
        let s = clip(stderr, 1000);
        if s.is_empty() {
            format!("nmap exited with {status} and no message")
        } else {
            s
        }
    };
    if let Some(f) = &doc.finished {
        if f.exit == nmap_xml::ExitStatus::Error {
            let message = f.error_message.clone().filter(|m| !m.trim().is_empty());
            return Some(Error::Nmap {
                message: message.unwrap_or_else(fallback),
            });
        }
    }
    if !status.success() {
        return Some(Error::Nmap {
            message: format!("{status}: {}", fallback()),
        });
    }
    parse_err.map(|source| Error::Output { source })
}

/// The batch's hosts from nmap's document, filtered to what each job asked for.
fn collect(doc: NmapRun, b: &Batch, sh: &Shared) -> (Vec<HostServices>, Vec<Error>) {
    let os = os_enabled(&sh.settings, &sh.caps);
    let mut hosts = Vec::new();
    let mut errors = Vec::new();
    for h in doc.hosts {
        let addr = h
            .addresses
            .iter()
            .filter(|a| matches!(a.kind, AddrKind::Ipv4 | AddrKind::Ipv6))
            .find_map(|a| a.addr.parse::<IpAddr>().ok());
        let Some((address, wanted)) = addr.and_then(|a| b.hosts.get_key_value(&a)) else {
            tracing::debug!(batch = b.index, address = ?addr, "nmap reported a host not in its batch; ignored");
            continue;
        };
        if h.status != HostStatus::Up {
            tracing::debug!(batch = b.index, %address, status = ?h.status, "nmap did not scan a host");
            continue;
        }
        if h.ports.is_empty() && h.extraports.is_empty() {
            // nmap writes a timed-out host (timedout="true") without any port information.
            errors.push(Error::HostTimeout {
                address: *address,
                after: sh.settings.host_timeout,
            });
            continue;
        }
        let (mut tcp, mut udp) = (Vec::new(), Vec::new());
        for p in h.ports {
            match p.protocol {
                Protocol::Tcp if wanted.binary_search(&p.port).is_ok() => tcp.push(p),
                Protocol::Udp if sh.udp_ports.binary_search(&p.port).is_ok() => udp.push(p),
                _ => {}
            }
        }
        hosts.push(HostServices {
            address: *address,
            tcp,
            udp,
            os: if os { h.os_matches } else { Vec::new() },
        });
    }
    (hosts, errors)
}

/// Appends stdout to `out` until EOF (Ok(false)) or `MAX_XML_BYTES` (Ok(true)), reporting
/// `<taskprogress>` entries as they arrive. Cancel-safe: bytes read are never lost.
async fn read_xml(
    r: &mut ChildStdout,
    out: &mut Vec<u8>,
    scan: &mut TaskScan,
    on_tick: &mut impl FnMut(Tick),
) -> io::Result<bool> {
    let mut chunk = vec![0u8; 32 * 1024];
    loop {
        let n = r.read(&mut chunk).await?;
        if n == 0 {
            return Ok(false);
        }
        let room = MAX_XML_BYTES.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..n.min(room)]);
        scan.feed(out, on_tick);
        if n > room {
            return Ok(true);
        }
    }
}

/// Reads to EOF, keeping the first `cap` bytes (the rest is drained so the writer never blocks).
pub(super) async fn read_capped(mut r: impl AsyncRead + Unpin, out: &mut Vec<u8>, cap: usize) {
    let mut chunk = [0u8; 4096];
    while let Ok(n) = r.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        let room = cap.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..n.min(room)]);
    }
}

pub(super) fn clip(s: &str, max: usize) -> String {
    let s = s.trim();
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}
