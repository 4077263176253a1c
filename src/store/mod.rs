//! Store stage: what is remembered, in RocksDB. Latest state per host, every scan run and the history
//! events, each in its own column family (see [`schema`]). One scan's results are written in one
//! WriteBatch, so a crash never leaves half a scan; the WAL makes every committed batch survive a
//! killed process. Calls block: async callers go through `spawn_blocking`.
//!
//! Layout: this file holds the handle, its errors and the records' reads and writes; `open.rs`
//! opening and checking a directory; `health.rs` the one write path and the full-disk state;
//! `events.rs` history queries; `retention.rs` pruning; [`schema`] keys and column families.

mod events;
mod health;
mod open;
mod retention;
pub mod schema;

pub use events::{EventPage, EventQuery, MAX_EXAMINED};
use health::Health;

use crate::model::{Event, Finding, HostState, Outcome, ScanRun, UnixSeconds, Vm};
use rocksdb::{Direction, IteratorMode, WriteBatch, DB};
use schema::*;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot open the store at {path}: {message}; {hint}")]
    Open {
        path: PathBuf,
        message: String,
        hint: &'static str,
    },
    #[error("the store at {path} has schema version {found}, but this stinger reads version {expected}; run a stinger that matches it, or point --storage.path at a new directory")]
    Schema {
        path: PathBuf,
        found: String,
        expected: u32,
    },
    #[error("store operation failed: {0}; {hint}", hint = db_hint(.0))]
    Db(#[from] rocksdb::Error),
    /// RocksDB refused a write because the disk is full; it resumes by itself once space is back.
    #[error("the disk holding the store at {path} is full ({message}); free space on it: stinger serves the last stored state meanwhile and writes again by itself once {} MiB are free", open::MEMTABLE_BYTES >> 20)]
    NoSpace { path: PathBuf, message: String },
    #[error("could not encode a {what} record: {source}")]
    Encode {
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("storage task failed: {0}")]
    Task(String),
}

impl Error {
    /// Stable label for `stinger_errors_total{kind}`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Open { .. } => "open",
            Error::Schema { .. } => "schema",
            Error::Db(_) => "db",
            Error::NoSpace { .. } => "no_space",
            Error::Encode { .. } => "encode",
            Error::Task(_) => "task",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What to do about a RocksDB error in the middle of a run.
fn db_hint(e: &rocksdb::Error) -> &'static str {
    match e.kind() {
        rocksdb::ErrorKind::Corruption => {
            "the store is damaged: stop stinger, move --storage.path aside and start with an empty directory, or restore a backup"
        }
        rocksdb::ErrorKind::IOError => {
            "check the disk and the file system holding --storage.path (the kernel log says more)"
        }
        _ => "the operation is retried at the next pass",
    }
}

/// Everything one finished scan changes: the run, hosts and events atomically, in one batch; the
/// VM records (inventory facts that stand on their own) before it, a few hundred a batch, so a
/// large cloud's records are not all held twice (encoded, then in the memtable) at once.
#[derive(Debug, Default)]
pub struct Commit {
    pub run: Option<ScanRun>,
    pub hosts: Vec<HostState>,
    pub removed_hosts: Vec<String>,
    pub events: Vec<Event>,
    /// Cloud VMs inventoried (written) and gone (deleted), by instance id.
    pub vms: Vec<Arc<Vm>>,
    pub removed_vms: Vec<String>,
    /// Findings the scan changed (in the same batch as the hosts that changed them).
    pub findings: Vec<Finding>,
    /// Findings deleted outright, by id: their host belongs to another shard now (`shard.count`
    /// changed), whose agent keeps it; they did not resolve.
    pub handed_over: Vec<String>,
}

/// A handle on the open database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<DB>,
    path: PathBuf,
    /// Held while a run id is allocated: the agent's loop and the API (on-demand scans) both
    /// begin runs.
    run_ids: Arc<std::sync::Mutex<()>>,
    /// Whether writes go through (a full disk): shared by every clone.
    health: Arc<Health>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

fn decode<T: DeserializeOwned>(cf: &str, key: &[u8], value: &[u8]) -> Option<T> {
    match serde_json::from_slice(value) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::error!(cf, key = %to_hex(key), error = %e, "skipping a corrupt stored record");
            None
        }
    }
}

/// At most this many host ids of one VM are looked up for its history.
const MAX_HOSTS_UNDER: usize = 1024;
/// VM records written in one batch.
const VMS_PER_BATCH: usize = 256;

fn encode<T: serde::Serialize>(what: &'static str, v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|source| Error::Encode { what, source })
}

impl Store {
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily> {
        // Every name in ALL_CFS is created at open, so this only fails on a programming error.
        self.db.cf_handle(name).ok_or_else(|| Error::Open {
            path: self.path.clone(),
            message: format!("column family {name} is missing"),
            hint: "the store is damaged or was written by another program",
        })
    }

    /// The latest state of every known host.
    pub fn hosts(&self) -> Result<Vec<HostState>> {
        let cf = self.cf(CF_HOSTS)?;
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (k, v) = item?;
            out.extend(decode::<HostState>(CF_HOSTS, &k, &v));
        }
        Ok(out)
    }

    /// Every cloud VM of the last good inventories.
    pub fn vms(&self) -> Result<Vec<Vm>> {
        let cf = self.cf(CF_VMS)?;
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (k, v) = item?;
            out.extend(decode::<Vm>(CF_VMS, &k, &v));
        }
        Ok(out)
    }

    /// When the last digest e-mail went out, if one ever did (an unreadable record counts as none).
    pub fn email_last_sent(&self) -> Result<Option<UnixSeconds>> {
        let v = self.db.get_cf(self.cf(CF_META)?, META_EMAIL_LAST_SENT)?;
        Ok(
            v.and_then(|v| std::str::from_utf8(&v).ok()?.parse::<f64>().ok())
                .filter(|t| t.is_finite()),
        )
    }

    /// Record that a digest e-mail went out at `t` (durably: a restart must not send it twice).
    pub fn set_email_last_sent(&self, t: UnixSeconds) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META)?, META_EMAIL_LAST_SENT, t.to_string());
        self.write(batch, true)
    }

    /// When the last findings digest to `project`'s recipients (`None`: the admins) went out, if
    /// one ever did (an unreadable record counts as none).
    pub fn digest_last_sent(&self, project: Option<&str>) -> Result<Option<UnixSeconds>> {
        let v = self
            .db
            .get_cf(self.cf(CF_META)?, digest_last_sent_key(project))?;
        Ok(
            v.and_then(|v| std::str::from_utf8(&v).ok()?.parse::<f64>().ok())
                .filter(|t| t.is_finite()),
        )
    }

    /// Record that a digest to `project`'s recipients (`None`: the admins) went out at `t`
    /// (durably: a restart must not send it twice).
    pub fn set_digest_last_sent(&self, project: Option<&str>, t: UnixSeconds) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.put_cf(
            self.cf(CF_META)?,
            digest_last_sent_key(project),
            t.to_string(),
        );
        self.write(batch, true)
    }

    /// Allocate the next scan-run id and record the run as running (or as queued, when it is).
    pub fn begin_run(&self, mut run: ScanRun) -> Result<ScanRun> {
        let _one_at_a_time = self.run_ids.lock().unwrap_or_else(|p| p.into_inner());
        let meta = self.cf(CF_META)?;
        let last = self
            .db
            .get_cf(meta, META_LAST_RUN)?
            .and_then(|v| decode_u64(&v))
            .unwrap_or(0);
        run.id = last + 1;
        if run.outcome != Outcome::Queued {
            run.outcome = Outcome::Running;
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(meta, META_LAST_RUN, run_key(run.id));
        batch.put_cf(self.cf(CF_SCANS)?, run_key(run.id), encode("scan", &run)?);
        self.write(batch, false)?;
        Ok(run)
    }

    /// Record a run's new state on its own (a queued run that starts).
    pub fn put_run(&self, run: &ScanRun) -> Result<()> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_SCANS)?, run_key(run.id), encode("scan", run)?);
        self.write(batch, false)
    }

    /// Write one scan's results (see [`Commit`]).
    pub fn commit(&self, c: &Commit) -> Result<()> {
        let vms = self.cf(CF_VMS)?;
        for chunk in c.vms.chunks(VMS_PER_BATCH) {
            let mut batch = WriteBatch::default();
            for v in chunk {
                batch.put_cf(vms, v.id.as_bytes(), encode("vm", &**v)?);
            }
            self.write(batch, false)?;
        }
        let mut batch = WriteBatch::default();
        if let Some(run) = &c.run {
            batch.put_cf(self.cf(CF_SCANS)?, run_key(run.id), encode("scan", run)?);
        }
        let hosts = self.cf(CF_HOSTS)?;
        for h in &c.hosts {
            batch.put_cf(hosts, h.id.as_bytes(), encode("host", h)?);
        }
        for id in &c.removed_hosts {
            batch.delete_cf(hosts, id.as_bytes());
        }
        for id in &c.removed_vms {
            batch.delete_cf(vms, id.as_bytes());
        }
        let (events, index) = (self.cf(CF_EVENTS)?, self.cf(CF_EVENTS_BY_HOST)?);
        for (seq, e) in c.events.iter().enumerate() {
            let key = event_key(e.time, e.scan_id, seq as u32);
            batch.put_cf(events, key, encode("event", e)?);
            batch.put_cf(index, host_index_key(&e.host, &key), []);
        }
        let findings = self.cf(CF_FINDINGS)?;
        for f in &c.findings {
            batch.put_cf(findings, f.id.as_bytes(), encode("finding", f)?);
        }
        for id in &c.handed_over {
            batch.delete_cf(findings, id.as_bytes());
        }
        // Synced: a pass's results survive a power failure once the agent serves them (one fsync
        // of the WAL per pass).
        self.write(batch, true)
    }

    /// Every stored finding.
    pub fn findings(&self) -> Result<Vec<Finding>> {
        let cf = self.cf(CF_FINDINGS)?;
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (k, v) = item?;
            out.extend(decode::<Finding>(CF_FINDINGS, &k, &v));
        }
        Ok(out)
    }

    /// Write findings on their own (an acknowledgement, an expiry) in one synced batch: all or
    /// nothing, and durable before the caller answers.
    pub fn put_findings(&self, list: &[Finding]) -> Result<()> {
        let cf = self.cf(CF_FINDINGS)?;
        let mut batch = WriteBatch::default();
        for f in list {
            batch.put_cf(cf, f.id.as_bytes(), encode("finding", f)?);
        }
        self.write(batch, true)
    }

    /// Mark runs left "running" (or "queued") by a process that stopped mid-scan as interrupted. Looks at the
    /// newest 1000 runs: stages run side by side, so a long run can be older than settled ones.
    pub fn mark_interrupted(&self) -> Result<usize> {
        let cf = self.cf(CF_SCANS)?;
        let mut batch = WriteBatch::default();
        let mut n = 0;
        for item in self.db.iterator_cf(cf, IteratorMode::End).take(1000) {
            let (k, v) = item?;
            let Some(mut run) = decode::<ScanRun>(CF_SCANS, &k, &v) else {
                continue;
            };
            if matches!(run.outcome, Outcome::Running | Outcome::Queued) {
                let what = if run.outcome == Outcome::Queued {
                    "the agent stopped before this scan started; ask for it again"
                } else {
                    "the agent stopped before this scan finished"
                };
                run.outcome = Outcome::Interrupted;
                run.errors.push(what.into());
                batch.put_cf(cf, &k, encode("scan", &run)?);
                n += 1;
            }
        }
        if n > 0 {
            self.write(batch, false)?;
        }
        Ok(n)
    }

    /// Scan runs, newest first, with ids below `before`.
    pub fn scans(&self, before: Option<u64>, limit: usize) -> Result<Vec<ScanRun>> {
        let cf = self.cf(CF_SCANS)?;
        let start = before.map(|b| run_key(b.saturating_sub(1)));
        let mode = match &start {
            Some(k) if before != Some(0) => IteratorMode::From(k, Direction::Reverse),
            Some(_) => return Ok(Vec::new()),
            None => IteratorMode::End,
        };
        let mut out = Vec::new();
        for item in self.db.iterator_cf(cf, mode) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = item?;
            out.extend(decode::<ScanRun>(CF_SCANS, &k, &v));
        }
        Ok(out)
    }

    pub fn scan(&self, id: u64) -> Result<Option<ScanRun>> {
        let cf = self.cf(CF_SCANS)?;
        Ok(self
            .db
            .get_cf(cf, run_key(id))?
            .and_then(|v| decode(CF_SCANS, &run_key(id), &v)))
    }

    /// Flush memtables to disk (on shutdown; the WAL already makes commits durable).
    pub fn flush(&self) -> Result<()> {
        for name in ALL_CFS {
            self.db.flush_cf(self.cf(name)?)?;
        }
        Ok(())
    }
}

/// Run a blocking store call off the async runtime.
pub async fn blocking<T, F>(store: &Store, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Store) -> Result<T> + Send + 'static,
{
    let s = store.clone();
    tokio::task::spawn_blocking(move || f(&s))
        .await
        .map_err(|e| Error::Task(e.to_string()))?
}

#[cfg(test)]
mod events_tests;
#[cfg(test)]
mod faults_tests;
#[cfg(test)]
mod retention_tests;
#[cfg(test)]
mod tests;
