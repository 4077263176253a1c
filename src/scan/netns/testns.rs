//! Test helpers for work in network namespaces (other modules' tests use them too): Neutron-like
//! test namespaces, the privilege check that skips tests which need root, and a banner server
//! (inside a namespace, or in this one).

use super::*;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Where `ip netns add` puts the test namespaces.
const NETNS_DIR: &str = "/run/netns";

/// Bit of CAP_SYS_ADMIN in the capability sets of `/proc/<pid>/status`; `setns` needs it.
pub(crate) const CAP_SYS_ADMIN: u32 = 21;

/// Run a command, killing it after 20 s; returns whether it succeeded, and its stderr.
pub(crate) fn run(cmd: &str, args: &[&str]) -> (bool, String) {
    let mut child = Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            return (
                status.success(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd} {args:?} did not finish in 20 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub(crate) fn must_run(cmd: &str, args: &[&str]) {
    let (ok, stderr) = run(cmd, args);
    assert!(ok, "{cmd} {args:?} failed: {stderr}");
}

/// A uuid-shaped id that no other test (or earlier run) uses.
pub(crate) fn fresh_id() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = N.fetch_add(1, Ordering::Relaxed) as u128;
    let x = nanos ^ ((std::process::id() as u128) << 64) ^ (n << 112);
    let h = format!("{x:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A Neutron-like `qdhcp-<id>` namespace with loopback up, deleted on drop.
pub(crate) struct TestNs {
    pub(crate) name: String,
    pub(crate) path: PathBuf,
}

impl TestNs {
    pub(crate) fn create() -> TestNs {
        let name = format!("qdhcp-{}", fresh_id());
        must_run("ip", &["netns", "add", &name]);
        let ns = TestNs {
            path: Path::new(NETNS_DIR).join(&name),
            name,
        };
        // nsenter enters the network namespace only; `ip -n` also remounts / and /sys in a
        // mount namespace of its own, which fails where / is not a mount point (a chroot).
        ns.exec(&["ip", "link", "set", "lo", "up"], true);
        ns
    }

    /// Run a command inside the namespace; panics on failure when `must`.
    pub(crate) fn exec(&self, cmd: &[&str], must: bool) -> (bool, String) {
        let net = format!("--net={}", self.path.display());
        let mut args = vec![net.as_str()];
        args.extend_from_slice(cmd);
        let (ok, stderr) = run("nsenter", &args);
        assert!(ok || !must, "nsenter {args:?} failed: {stderr}");
        (ok, stderr)
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        let (ok, stderr) = run("ip", &["netns", "del", &self.name]);
        if !ok {
            eprintln!("could not delete test namespace {}: {stderr}", self.name);
        }
    }
}

/// Whether the namespace tests can run here; says why not when they cannot.
pub(crate) fn privileged(test: &str) -> bool {
    let status = match std::fs::read_to_string("/proc/self/status") {
        Ok(status) => status,
        Err(e) => {
            eprintln!("SKIPPING {test}: cannot read /proc/self/status to check CAP_SYS_ADMIN: {e}");
            return false;
        }
    };
    match cap_eff_has(&status, CAP_SYS_ADMIN) {
        Some(true) => true,
        Some(false) => {
            eprintln!(
                "SKIPPING {test}: it needs to create and enter network namespaces, which needs \
                 CAP_SYS_ADMIN in the effective capabilities; {CAP_HINT}"
            );
            false
        }
        None => {
            eprintln!("SKIPPING {test}: /proc/self/status has no readable CapEff line");
            false
        }
    }
}

/// Whether the `CapEff:` line of a `/proc/<pid>/status` text has capability `bit` set; `None` when
/// there is no such line or it is not hexadecimal.
pub(crate) fn cap_eff_has(status_text: &str, bit: u32) -> Option<bool> {
    let hex = status_text
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    let mask = u64::from_str_radix(hex, 16).ok()?;
    Some(bit < 64 && mask & (1u64 << bit) != 0)
}

/// A TCP server that writes `banner` on every connection it accepts (nmap's NULL probe matches
/// an SSH banner at once), until dropped. With an empty banner it holds every connection open
/// and says nothing (nmap's probes then wait out their timeouts).
pub(crate) struct BannerServer {
    pub(crate) port: u16,
    stop: CancellationToken,
}

impl Drop for BannerServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl BannerServer {
    /// Listens on `addr:port` (0: any free port), inside the namespace at `ns` (on its own
    /// thread, see [`spawn_in`]) or, with `None`, in this one; panics when it does not listen
    /// within 10 s.
    pub(crate) async fn start(
        ns: Option<&Path>,
        addr: IpAddr,
        port: u16,
        banner: &'static [u8],
    ) -> BannerServer {
        let stop = CancellationToken::new();
        let (port_tx, port_rx) = oneshot::channel();
        let stopped = stop.clone();
        let serve = move || serve(addr, port, banner, port_tx, stopped);
        let task = match ns {
            Some(ns) => {
                let running = spawn_in(ns, serve);
                tokio::spawn(async move { running.await.map_err(|e| e.to_string()) })
            }
            None => tokio::spawn(async move {
                serve().await;
                Ok(())
            }),
        };
        match tokio::time::timeout(Duration::from_secs(10), port_rx).await {
            Ok(Ok(Ok(port))) => BannerServer { port, stop },
            other => {
                stop.cancel();
                let why = tokio::time::timeout(Duration::from_secs(5), task).await;
                panic!("no banner server on {addr}:{port} in {ns:?}: {other:?}; {why:?}");
            }
        }
    }
}

async fn serve(
    addr: IpAddr,
    port: u16,
    banner: &'static [u8],
    port_tx: oneshot::Sender<io::Result<u16>>,
    stop: CancellationToken,
) {
    use tokio::io::AsyncWriteExt;
    let l = match tokio::net::TcpListener::bind((addr, port)).await {
        Ok(l) => l,
        Err(e) => {
            let _ = port_tx.send(Err(e));
            return;
        }
    };
    let _ = port_tx.send(l.local_addr().map(|a| a.port()));
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            r = l.accept() => {
                let Ok((mut s, _)) = r else { continue };
                let stop = stop.clone();
                tokio::spawn(async move {
                    if banner.is_empty() {
                        // Silent: hold the connection, answer nothing.
                        stop.cancelled().await;
                        return;
                    }
                    let _ = s.write_all(banner).await;
                    let _ = s.shutdown().await;
                    // Give the client time to read before the socket closes.
                    tokio::time::sleep(Duration::from_secs(1)).await;
                });
            }
        }
    }
}
