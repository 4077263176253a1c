//! The binary and our rights: `nmap --version` (present, new enough) and raw-socket privileges
//! read from /proc/self/status.

use super::batch::{clip, read_capped, MAX_STDERR_BYTES};
use super::{spawn_error, Capabilities, Error, Settings};
use std::process::Stdio;
use std::time::Duration;

const CAP_NET_RAW: u32 = 13;

/// Runs `nmap --version` and checks our privileges. Call once at start-up (and on reload).
pub async fn probe_nmap(settings: &Settings) -> Result<Capabilities, Error> {
    let mut child = super::nmap_command(&settings.path)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| spawn_error(&settings.path, e))?;
    let mut out = Vec::new();
    let ran = async {
        if let Some(stdout) = child.stdout.take() {
            read_capped(stdout, &mut out, MAX_STDERR_BYTES).await;
        }
        child.wait().await
    };
    let status = match tokio::time::timeout(Duration::from_secs(10), ran).await {
        Ok(Ok(status)) => status,
        Ok(Err(e)) => return Err(spawn_error(&settings.path, e)),
        Err(_) => {
            return Err(Error::Nmap {
                message: format!("`{} --version` hung for 10s", settings.path.display()),
            })
        }
    };
    let text = String::from_utf8_lossy(&out);
    let version = match parse_version(&text) {
        Some(v) if status.success() => v,
        _ => {
            return Err(Error::Nmap {
                message: format!(
                    "`{} --version` ({status}) did not print \"Nmap version …\"; is scan.nmap.path nmap? output: {}",
                    settings.path.display(),
                    clip(text.trim(), 200)
                ),
            })
        }
    };
    let major: u32 = version
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < 7 {
        return Err(Error::TooOld { version });
    }
    let (root, privileged) = match tokio::fs::read_to_string("/proc/self/status").await {
        Ok(status) => privileges(&status),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read /proc/self/status; assuming no raw-socket rights");
            (false, false)
        }
    };
    Ok(Capabilities {
        version,
        privileged,
        root,
    })
}

pub(super) fn parse_version(text: &str) -> Option<String> {
    let rest = &text[text.find("Nmap version ")? + "Nmap version ".len()..];
    let v = rest.split_whitespace().next()?;
    v.starts_with(|c: char| c.is_ascii_digit())
        .then(|| v.to_string())
}

/// (root, privileged) from /proc/self/status. Root needs CAP_NET_RAW in CapEff (containers may
/// drop it); a non-root agent's capabilities reach nmap only through the ambient set.
pub(super) fn privileges(status: &str) -> (bool, bool) {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    let cap = |name: &str| {
        field(name)
            .and_then(|v| u64::from_str_radix(v, 16).ok())
            .map(|bits| bits & (1 << CAP_NET_RAW) != 0)
    };
    let root = field("Uid")
        .and_then(|v| v.split_whitespace().nth(1))
        .is_some_and(|euid| euid == "0");
    let privileged = if root {
        cap("CapEff").unwrap_or(true)
    } else {
        cap("CapEff").unwrap_or(false) && cap("CapAmb").unwrap_or(false)
    };
    (root, privileged)
}
