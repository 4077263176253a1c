//! nmap children that outlive their agent. `kill_on_drop` ends them when the agent stops, but a
//! SIGKILLed agent (OOM killer, `kill -9`, a crash) runs no destructor, and its nmap batches go on
//! scanning for up to `batch_timeout`. So every child carries a marker in its environment naming its
//! agent (by storage path: one agent per store), and an agent starting on that store kills what
//! still carries it. No pid files, no unsafe code: `/proc/<pid>/environ` is readable for processes
//! of our own user, and those are the only ones we could have started.

use std::ffi::OsString;
use std::path::Path;
use std::sync::OnceLock;

/// The environment variable that names a child's agent.
pub const MARKER: &str = "STINGER_AGENT_STORE";

static AGENT: OnceLock<OsString> = OnceLock::new();

/// Mark every nmap this process starts from now on as this agent's (the store it uses). Called
/// once at start; later calls keep the first value.
pub fn mark_children(store: &Path) {
    let _ = AGENT.set(store.as_os_str().to_owned());
}

/// The marker value children get, once [`mark_children`] was called.
pub(super) fn marker() -> Option<&'static OsString> {
    AGENT.get()
}

/// Kill (SIGKILL) every process of ours, other than this one, whose environment carries the
/// marker for `store`: nmap batches a SIGKILLed agent left running. Returns the pids killed.
pub fn reap(store: &Path) -> Vec<i32> {
    let want = {
        let mut v = format!("{MARKER}=").into_bytes();
        v.extend_from_slice(store.as_os_str().as_encoded_bytes());
        v
    };
    let me = std::process::id() as i32;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut killed = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        // Unreadable (another user's process, or gone): not ours.
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ.split(|b| *b == 0).any(|var| var == want.as_slice()) {
            use nix::sys::signal::{kill, Signal};
            match kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL) {
                Ok(()) => {
                    tracing::warn!(
                        pid,
                        "killed an nmap left running by an agent that was killed on this store"
                    );
                    killed.push(pid);
                }
                Err(e) => {
                    tracing::warn!(pid, error = %e, "cannot kill an nmap left running by an earlier agent")
                }
            }
        }
    }
    killed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn children_left_by_a_killed_agent_are_found_by_their_marker_and_killed() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("data");
        // What nmap_command does for a marked agent, with `sleep` standing in for nmap.
        let mut cmd = tokio::process::Command::new("sleep");
        cmd.arg("30").env(MARKER, store.as_os_str());
        let mut child = cmd.spawn().unwrap();
        let pid = child.id().unwrap() as i32;
        // Another store's child is left alone.
        let other = dir.path().join("other");
        let mut bystander = tokio::process::Command::new("sleep")
            .arg("30")
            .env(MARKER, other.as_os_str())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let killed = reap(&store);
        assert_eq!(killed, [pid]);
        let status = tokio::time::timeout(std::time::Duration::from_secs(5), child.wait())
            .await
            .expect("the orphan died")
            .unwrap();
        assert!(!status.success());
        assert!(
            bystander.try_wait().unwrap().is_none(),
            "the other store's child still runs"
        );
        assert!(reap(&store).is_empty());
    }
}
