//! Test network namespaces: [`TestNs`], a Neutron-like `qdhcp-<id>` namespace made with
//! `ip netns add` (deleted on drop) to run commands in with `nsenter`; [`privileged`], the check
//! that skips (and says so) a test which needs CAP_SYS_ADMIN; [`fresh_id`], uuid-shaped ids no
//! other test uses; and [`run`]/[`must_run`]/[`run_stdout`], bounded child processes. Entering a
//! namespace from stinger's own code (its `setns` thread) stays in stinger's tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where `ip netns add` puts the namespaces.
const NETNS_DIR: &str = "/run/netns";

/// A command that has not finished by then is killed and the test fails.
const COMMAND_LIMIT: Duration = Duration::from_secs(20);

/// Bit of CAP_SYS_ADMIN in the capability sets of `/proc/<pid>/status`; `setns` and
/// `ip netns add` need it.
pub const CAP_SYS_ADMIN: u32 = 21;

/// Runs a command, killing it after 20 s (then panics); whether it succeeded, and its stderr.
pub fn run(cmd: &str, args: &[&str]) -> (bool, String) {
    let mut child = Command::new(cmd)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    let deadline = Instant::now() + COMMAND_LIMIT;
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
            panic!("{cmd} {args:?} did not finish in {COMMAND_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs a command like [`run`] but keeps its standard output: whether it succeeded, its stdout and
/// its stderr.
pub fn run_stdout(cmd: &str, args: &[&str]) -> (bool, String, String) {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    // Drained on threads of their own, so a chatty command never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + COMMAND_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd} {args:?} did not finish in {COMMAND_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    (
        status.success(),
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    )
}

/// Runs a command like [`run`]; panics with its stderr when it fails.
pub fn must_run(cmd: &str, args: &[&str]) {
    let (ok, stderr) = run(cmd, args);
    assert!(ok, "{cmd} {args:?} failed: {stderr}");
}

/// A uuid-shaped id that no other test (or earlier run) uses.
pub fn fresh_id() -> String {
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
pub struct TestNs {
    pub name: String,
    /// Its bind mount under `/run/netns`.
    pub path: PathBuf,
}

impl TestNs {
    /// Creates the namespace (needs CAP_SYS_ADMIN: check [`privileged`] first).
    pub fn create() -> TestNs {
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

    /// Runs a command inside the namespace; panics on failure when `must`.
    pub fn exec(&self, cmd: &[&str], must: bool) -> (bool, String) {
        let net = format!("--net={}", self.path.display());
        let mut args = vec![net.as_str()];
        args.extend_from_slice(cmd);
        let (ok, stderr) = run("nsenter", &args);
        assert!(ok || !must, "nsenter {args:?} failed: {stderr}");
        (ok, stderr)
    }

    /// Runs a command inside the namespace and returns its stdout; panics when it fails.
    pub fn output(&self, cmd: &[&str]) -> String {
        let net = format!("--net={}", self.path.display());
        let mut args = vec![net.as_str()];
        args.extend_from_slice(cmd);
        let (ok, stdout, stderr) = run_stdout("nsenter", &args);
        assert!(ok, "nsenter {args:?} failed: {stderr}");
        stdout
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

/// Whether tests that create and enter network namespaces can run here; prints why not (as
/// `SKIPPING <test>: …`) when they cannot.
pub fn privileged(test: &str) -> bool {
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
                 CAP_SYS_ADMIN in the effective capabilities; run the tests as root (or in a \
                 container started with --cap-add SYS_ADMIN)"
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
pub fn cap_eff_has(status_text: &str, bit: u32) -> Option<bool> {
    let hex = status_text
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    let mask = u64::from_str_radix(hex, 16).ok()?;
    Some(bit < 64 && mask & (1u64 << bit) != 0)
}
