//! Unit tests of the store under faults: a full disk (a small tmpfs, skipped with a reason when
//! mounting is not permitted), a read-only file system, flipped bytes in an SST and in the
//! MANIFEST, and another program's RocksDB, which must be refused untouched.
use super::tests::{ev, host, run};
use super::*;
use crate::model::EventKind;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmpfs of `size` mounted on a temporary directory, unmounted on drop (bounded retries).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` (with the reason printed) when this process may not mount.
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            Ok(o) => {
                eprintln!(
                    "skipped: cannot mount a tmpfs ({})",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount ({e})");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, flags: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,{flags}")])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(st.success(), "remount {flags}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        for _ in 0..50 {
            match Command::new("umount").arg(self.dir.path()).status() {
                Ok(st) if st.success() => return,
                _ => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        eprintln!("could not unmount {}", self.dir.path().display());
    }
}

/// An event whose record takes about `bytes` (a long group name).
fn big_event(t: f64, bytes: usize) -> Event {
    Event {
        group: "x".repeat(bytes),
        ..ev(t, "127.0.0.1", EventKind::PortOpened)
    }
}

fn event_times(s: &Store) -> Vec<f64> {
    let q = EventQuery {
        limit: 100_000,
        ..Default::default()
    };
    s.events(&q)
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.time)
        .collect()
}

#[test]
fn a_full_disk_is_reported_reads_go_on_and_writes_resume_once_space_is_back() {
    let Some(fs) = Tmpfs::mount("32m") else {
        return;
    };
    let path = fs.path().join("store");
    let s = Store::open(&path).unwrap();
    s.commit(&Commit {
        run: Some(s.begin_run(run(1.0)).unwrap()),
        hosts: vec![host("127.0.0.1", 22)],
        events: vec![ev(1.0, "127.0.0.1", EventKind::PortOpened)],
        ..Default::default()
    })
    .unwrap();
    // Fill the file system.
    let filler = fs.path().join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0u8; 1 << 16];
        while f.write_all(&chunk).is_ok() {}
    }
    // Commit until the store refuses (the WAL's preallocated space and the memtable run out).
    let mut committed = vec![1.0];
    let mut failure = None;
    for i in 0..2_000 {
        let t = 10.0 + f64::from(i);
        match s.commit(&Commit {
            events: vec![big_event(t, 50_000)],
            ..Default::default()
        }) {
            Ok(()) => committed.push(t),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let e = failure.expect("commits kept succeeding on a full disk");
    assert_eq!(e.kind(), "no_space", "{e}");
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    assert!(!s.writable());
    // Refused again while the disk is full; the last stored state is still read.
    assert!(s.commit(&Commit::default()).is_err());
    assert_eq!(s.hosts().unwrap().len(), 1);
    assert_eq!(event_times(&s), committed);
    // Space comes back: RocksDB resumes by itself (it polls every 5 s).
    std::fs::remove_file(&filler).unwrap();
    let start = Instant::now();
    let after = 100_000.0;
    loop {
        match s.commit(&Commit {
            events: vec![ev(after, "127.0.0.1", EventKind::PortClosed)],
            ..Default::default()
        }) {
            Ok(()) => break,
            Err(e) => assert!(
                start.elapsed() < Duration::from_secs(30),
                "no resume 30 s after space came back: {e}"
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    committed.push(after);
    assert!(s.writable());
    // Nothing committed before, during or after is lost.
    drop(s);
    let s = Store::open(&path).unwrap();
    assert_eq!(event_times(&s), committed);
    assert_eq!(s.hosts().unwrap().len(), 1);
    assert_eq!(s.scans(None, 10).unwrap().len(), 1);
}

#[test]
fn a_read_only_file_system_is_a_clear_open_error() {
    let Some(fs) = Tmpfs::mount("16m") else {
        return;
    };
    let path = fs.path().join("store");
    drop(Store::open(&path).unwrap());
    fs.remount("ro");
    let e = Store::open(&path).unwrap_err();
    fs.remount("rw");
    let m = e.to_string();
    assert_eq!(e.kind(), "open", "{m}");
    assert!(m.contains(&path.display().to_string()), "{m}");
    assert!(
        m.contains("mounted read-only: remount it read-write"),
        "{m}"
    );
}

/// A store with a few thousand events, flushed so that its records are in SST files.
fn flushed_store(path: &Path) {
    let s = Store::open(path).unwrap();
    let events = (0..5_000)
        .map(|i| ev(f64::from(i), "127.0.0.1", EventKind::PortOpened))
        .collect();
    s.commit(&Commit {
        events,
        ..Default::default()
    })
    .unwrap();
    s.flush().unwrap();
}

/// Flip every bit of the byte in the middle of the largest file whose name starts with `prefix`.
fn flip_middle_byte(dir: &Path, prefix: &str, suffix: &str) {
    let file = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with(prefix) && name.ends_with(suffix)
        })
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap_or_else(|| panic!("no {prefix}*{suffix} in {}", dir.display()));
    let mut bytes = std::fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
}

fn assert_corrupt_error(path: &Path) {
    let e = Store::open(path).unwrap_err();
    let m = e.to_string();
    assert_eq!(e.kind(), "open", "{m}");
    assert!(m.contains(&path.display().to_string()), "{m}");
    assert!(
        m.contains("the store is corrupt") && m.contains("move the directory aside"),
        "{m}"
    );
}

#[test]
fn a_flipped_byte_in_an_sst_is_a_clear_open_error() {
    let dir = tempfile::tempdir().unwrap();
    flushed_store(dir.path());
    flip_middle_byte(dir.path(), "", ".sst");
    assert_corrupt_error(dir.path());
}

#[test]
fn a_flipped_byte_in_the_manifest_is_a_clear_open_error() {
    let dir = tempfile::tempdir().unwrap();
    flushed_store(dir.path());
    flip_middle_byte(dir.path(), "MANIFEST-", "");
    assert_corrupt_error(dir.path());
}

/// Every file of a directory, by name, with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            (name, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

#[test]
fn another_programs_rocksdb_is_refused_and_left_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let db = DB::open_cf(&opts, dir.path(), ["default", "ledger", "events"]).unwrap();
        db.put(b"k", b"v").unwrap();
    }
    let before = snapshot(dir.path());
    let e = Store::open(dir.path()).unwrap_err();
    assert_eq!(e.kind(), "schema", "{e}");
    assert!(e.to_string().contains("not a stinger store"), "{e}");
    let after = snapshot(dir.path());
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    assert!(before == after, "a file's bytes changed");
}

#[test]
fn open_hints_tell_a_permission_problem_from_a_lock_held() {
    let denied =
        "IO error: While open a file for appending: /var/lib/stinger/LOCK: Permission denied";
    assert!(open::open_hint(denied).contains("owner and mode"));
    let held = "IO error: While lock file: /var/lib/stinger/LOCK: Resource temporarily unavailable";
    assert!(open::open_hint(held).contains("another stinger process"));
}
