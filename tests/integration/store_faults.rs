//! The agent against a store it cannot use: a directory it may not write (run as `nobody` through
//! setpriv; skipped with a reason when not root or setpriv is missing) and a corrupt SST. Each must
//! stop the agent at start-up with exit code 1 and a message naming the path and what to do — no
//! panic (101). The store's own fault handling (full disk, MANIFEST, foreign databases) is unit
//! tested in `src/store/faults_tests.rs`.

use crate::util::{bin, write_config};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use stinger::model::{Event, EventKind};
use stinger::store::{Commit, Store};

const TARGETS: &str = "[[targets]]\nname = \"l\"\ncidrs = [\"127.0.67.1\"]\nports = \"20000\"\n";

/// A store at `path` with a few thousand events, flushed into SST files.
fn make_store(path: &Path) {
    let s = Store::open(path).unwrap();
    let events = (0..5_000)
        .map(|i| Event {
            time: f64::from(i),
            kind: EventKind::PortOpened,
            host: "127.0.67.1".into(),
            address: "127.0.67.1".parse().unwrap(),
            group: "l".into(),
            port: Some(20000),
            protocol: None,
            verdict: None,
            rule: None,
            service: None,
            vuln: None,
            scan_id: 1,
        })
        .collect();
    s.commit(&Commit {
        events,
        ..Default::default()
    })
    .unwrap();
    s.flush().unwrap();
}

/// Run the agent on `config` behind `prefix` (e.g. setpriv), killed after 60 s at most.
fn run_agent(prefix: &[&str], config: &Path) -> Output {
    Command::new("timeout")
        .arg("60")
        .args(prefix)
        .arg(bin())
        .arg("--config.file")
        .arg(config)
        .output()
        .unwrap()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn a_store_the_agent_may_not_write_stops_it_with_owner_and_mode_advice() {
    if !is_root() || Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("skipped: needs root and setpriv to run the agent as another user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = write_config(dir.path(), TARGETS);
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).unwrap();
    let store = dir.path().join("data");
    make_store(&store);
    // Owned by root, mode 0755: readable by nobody, not writable.
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o755)).unwrap();
    let nobody = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ];
    let out = run_agent(&nobody, &config);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&store.display().to_string()) && err.contains("owner and mode"),
        "{err}"
    );
    assert!(!err.contains("another stinger process"), "{err}");
}

#[test]
fn a_corrupt_store_stops_the_agent_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), TARGETS);
    let store = dir.path().join("data");
    make_store(&store);
    let sst = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sst"))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .expect("an SST file after the flush");
    let mut bytes = std::fs::read(&sst).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&sst, bytes).unwrap();
    let out = run_agent(&[], &config);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&store.display().to_string())
            && err.contains("the store is corrupt")
            && err.contains("move the directory aside"),
        "{err}"
    );
}
