//! Store stage: what is remembered, in RocksDB. Latest state per host, every scan run and the history
//! events, each in its own column family (see [`schema`]). One scan's results are written in one
//! WriteBatch, so a crash never leaves half a scan; the WAL makes every committed batch survive a
//! killed process. Calls block: async callers go through `spawn_blocking`.

pub mod schema;

use crate::model::{
    Event, EventKind, Finding, FindingState, HostState, Outcome, ScanRun, UnixSeconds, Vm,
};
use rocksdb::{ColumnFamilyDescriptor, Direction, IteratorMode, Options, WriteBatch, DB};
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
    #[error("store operation failed: {0}")]
    Db(#[from] rocksdb::Error),
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
            Error::Encode { .. } => "encode",
            Error::Task(_) => "task",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

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

/// Event keys from `from` (inclusive) to `until` (exclusive).
struct KeyRange {
    from: Vec<u8>,
    until: Option<Vec<u8>>,
}

impl KeyRange {
    fn before_until(&self, k: &[u8]) -> bool {
        self.until.as_ref().is_none_or(|u| k < u.as_slice())
    }
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub since: Option<UnixSeconds>,
    pub until: Option<UnixSeconds>,
    /// Only events of these host (or VM instance) ids; empty: every event.
    pub hosts: Vec<String>,
    pub kind: Option<EventKind>,
    /// Continue after this event key (from a previous page).
    pub after: Option<Vec<u8>>,
    pub limit: usize,
    /// Newest first (only with `hosts`; `since`, `until` and `after` still bound the range).
    pub newest_first: bool,
}

/// A handle on the open database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    db: Arc<DB>,
    path: PathBuf,
    /// Held while a run id is allocated: the agent's loop and the API (on-demand scans) both
    /// begin runs.
    run_ids: Arc<std::sync::Mutex<()>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

fn open_hint(message: &str) -> &'static str {
    let m = message.to_ascii_lowercase();
    if m.contains("lock") {
        "is another stinger process using this --storage.path? Stop it or choose another directory"
    } else if m.contains("permission") || m.contains("read-only") {
        "check that the user running stinger can write to this directory"
    } else if m.contains("no such file") || m.contains("not a directory") {
        "check that the parent directory exists and the path is a directory"
    } else {
        "check the path and the disk; the RocksDB message above says more"
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

/// Read an existing database's schema version without changing it (opened read-only): refuse a
/// stinger store of another version and a RocksDB that is not a stinger store at all.
fn check_existing(path: &Path) -> Result<()> {
    let open_error = |e: rocksdb::Error| {
        let message = e.to_string();
        Error::Open {
            path: path.to_path_buf(),
            hint: open_hint(&message),
            message,
        }
    };
    let cfs = DB::list_cf(&Options::default(), path).map_err(open_error)?;
    if !cfs.iter().any(|c| c == CF_META) {
        // A database with only the default family is empty (a first open that stopped early).
        return match cfs.iter().any(|c| c != "default") {
            true => Err(Error::Schema {
                path: path.to_path_buf(),
                found: format!(
                    "none (not a stinger store: column families {})",
                    cfs.join(", ")
                ),
                expected: SCHEMA_VERSION,
            }),
            false => Ok(()),
        };
    }
    let db =
        DB::open_cf_for_read_only(&Options::default(), path, &cfs, false).map_err(open_error)?;
    let found = match db.cf_handle(CF_META) {
        Some(meta) => db.get_cf(meta, META_SCHEMA)?,
        None => None,
    };
    match found {
        Some(v) if v != SCHEMA_VERSION.to_string().as_bytes() => Err(Error::Schema {
            path: path.to_path_buf(),
            found: String::from_utf8_lossy(&v).into_owned(),
            expected: SCHEMA_VERSION,
        }),
        _ => Ok(()),
    }
}

/// One column family's memtable: flushed to disk when it reaches this size.
const MEMTABLE_BYTES: usize = 4 << 20;
/// At most this many host ids of one VM are looked up for its history.
const MAX_HOSTS_UNDER: usize = 1024;
/// VM records written in one batch.
const VMS_PER_BATCH: usize = 256;
/// All memtables together.
const MEMTABLE_BUDGET: usize = 16 << 20;
/// The block cache all column families share.
const BLOCK_CACHE_BYTES: usize = 8 << 20;

fn encode<T: serde::Serialize>(what: &'static str, v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|source| Error::Encode { what, source })
}

impl Store {
    /// Open (or create) the store at `path`, checking its schema version — before anything is
    /// written to it: a store of another version, or another program's RocksDB, is refused as it
    /// was found (no column family added).
    pub fn open(path: &Path) -> Result<Store> {
        if path.join("CURRENT").exists() {
            check_existing(path)?;
        }
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        opts.set_keep_log_file_num(4);
        opts.set_max_log_file_size(4 << 20);
        opts.set_max_total_wal_size(64 << 20);
        // Memory: RocksDB's defaults (a 64 MiB memtable and a 32 MiB block cache for each column
        // family) suit a database server, not an agent whose state is tens of MB. Memtables share
        // one budget and flush early; reads share one small cache.
        opts.set_db_write_buffer_size(MEMTABLE_BUDGET);
        let cache = rocksdb::Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let cfs = ALL_CFS.iter().map(|name| {
            let mut o = Options::default();
            o.set_compression_type(rocksdb::DBCompressionType::Lz4);
            o.set_write_buffer_size(MEMTABLE_BYTES);
            let mut table = rocksdb::BlockBasedOptions::default();
            table.set_block_cache(&cache);
            o.set_block_based_table_factory(&table);
            ColumnFamilyDescriptor::new(*name, o)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(|e| {
            let message = e.to_string();
            Error::Open {
                path: path.to_path_buf(),
                hint: open_hint(&message),
                message,
            }
        })?;
        let store = Store {
            db: Arc::new(db),
            path: path.to_path_buf(),
            run_ids: Arc::default(),
        };
        store.check_schema()?;
        Ok(store)
    }

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

    fn check_schema(&self) -> Result<()> {
        let meta = self.cf(CF_META)?;
        match self.db.get_cf(meta, META_SCHEMA)? {
            None => {
                self.db
                    .put_cf(meta, META_SCHEMA, SCHEMA_VERSION.to_string())?;
                Ok(())
            }
            Some(v) if v == SCHEMA_VERSION.to_string().as_bytes() => Ok(()),
            Some(v) => Err(Error::Schema {
                path: self.path.clone(),
                found: String::from_utf8_lossy(&v).into_owned(),
                expected: SCHEMA_VERSION,
            }),
        }
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
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(true);
        self.db.put_cf_opt(
            self.cf(CF_META)?,
            META_EMAIL_LAST_SENT,
            t.to_string(),
            &opts,
        )?;
        Ok(())
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
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(true);
        self.db.put_cf_opt(
            self.cf(CF_META)?,
            digest_last_sent_key(project),
            t.to_string(),
            &opts,
        )?;
        Ok(())
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
        self.db.write(batch)?;
        Ok(run)
    }

    /// Record a run's new state on its own (a queued run that starts).
    pub fn put_run(&self, run: &ScanRun) -> Result<()> {
        self.db
            .put_cf(self.cf(CF_SCANS)?, run_key(run.id), encode("scan", run)?)?;
        Ok(())
    }

    /// Write one scan's results (see [`Commit`]).
    pub fn commit(&self, c: &Commit) -> Result<()> {
        let vms = self.cf(CF_VMS)?;
        for chunk in c.vms.chunks(VMS_PER_BATCH) {
            let mut batch = WriteBatch::default();
            for v in chunk {
                batch.put_cf(vms, v.id.as_bytes(), encode("vm", &**v)?);
            }
            self.db.write(batch)?;
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
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(true);
        self.db.write_opt(batch, &opts)?;
        Ok(())
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
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(true);
        self.db.write_opt(batch, &opts)?;
        Ok(())
    }

    /// Delete findings resolved before `before` (at most `budget`); returns their ids.
    pub fn prune_findings(&self, before: UnixSeconds, budget: usize) -> Result<Vec<String>> {
        let cf = self.cf(CF_FINDINGS)?;
        let mut batch = WriteBatch::default();
        let mut gone = Vec::new();
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            if gone.len() >= budget {
                break;
            }
            let (k, v) = item?;
            let Some(f) = decode::<Finding>(CF_FINDINGS, &k, &v) else {
                continue;
            };
            if f.state == FindingState::Resolved && f.resolved_at.is_some_and(|t| t < before) {
                batch.delete_cf(cf, &k);
                gone.push(f.id);
            }
        }
        self.db.write(batch)?;
        Ok(gone)
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
        self.db.write(batch)?;
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

    /// History events in time order, filtered; returns them with their keys (for paging).
    pub fn events(&self, q: &EventQuery) -> Result<Vec<(Vec<u8>, Event)>> {
        let until = q.until.map(|t| event_key_from(t + 1e-9));
        let mut from = q
            .since
            .map(|t| event_key_from(t).to_vec())
            .unwrap_or_default();
        if let Some(after) = &q.after {
            let mut next = after.clone();
            next.push(0); // the smallest key after `after`
            if next > from {
                from = next;
            }
        }
        let range = KeyRange {
            from,
            until: until.map(|u| u.to_vec()),
        };
        let mut out = Vec::new();
        if q.hosts.is_empty() {
            let events = self.cf(CF_EVENTS)?;
            let mode = IteratorMode::From(&range.from, Direction::Forward);
            for item in self.db.iterator_cf(events, mode) {
                let (k, v) = item?;
                if !range.before_until(&k) || out.len() >= q.limit {
                    break;
                }
                self.keep(q, k.to_vec(), &v, &mut out);
            }
            return Ok(out);
        }
        // Each host's first `limit` events (through the index), merged: any event among the first
        // `limit` of all of them is among the first `limit` of its own host.
        for host in &q.hosts {
            self.host_events(host, q, &range, &mut out)?;
        }
        if q.newest_first {
            out.sort_by(|a, b| b.0.cmp(&a.0));
        } else {
            out.sort_by(|a, b| a.0.cmp(&b.0));
        }
        out.dedup_by(|a, b| a.0 == b.0);
        out.truncate(q.limit);
        Ok(out)
    }

    /// Up to `q.limit` events of one host within `range`, in `q`'s order, appended to `out`.
    fn host_events(
        &self,
        host: &str,
        q: &EventQuery,
        range: &KeyRange,
        out: &mut Vec<(Vec<u8>, Event)>,
    ) -> Result<()> {
        let (events, index) = (self.cf(CF_EVENTS)?, self.cf(CF_EVENTS_BY_HOST)?);
        let prefix = host_index_prefix(host);
        let mut start = prefix.clone();
        let mode = if q.newest_first {
            // Just past the last possible key of this host within `until`.
            match &range.until {
                Some(u) => start.extend_from_slice(u),
                None => start.extend_from_slice(&[0xff; EVENT_KEY_LEN + 1]),
            }
            IteratorMode::From(&start, Direction::Reverse)
        } else {
            start.extend_from_slice(&range.from);
            IteratorMode::From(&start, Direction::Forward)
        };
        let mut n = 0;
        for item in self.db.iterator_cf(index, mode) {
            let (k, _) = item?;
            if !k.starts_with(&prefix) || n >= q.limit {
                break;
            }
            let ek = &k[prefix.len()..];
            if q.newest_first {
                if ek < range.from.as_slice() {
                    break;
                }
                if !range.before_until(ek) {
                    continue; // the seek key itself, when `until` is exact
                }
            } else if !range.before_until(ek) {
                break;
            }
            if let Some(v) = self.db.get_cf(events, ek)? {
                n += usize::from(self.keep(q, ek.to_vec(), &v, out));
            }
        }
        Ok(())
    }

    /// Decode an event and add it to `out` when it is of `q`'s kind; whether it was added.
    fn keep(&self, q: &EventQuery, k: Vec<u8>, v: &[u8], out: &mut Vec<(Vec<u8>, Event)>) -> bool {
        match decode::<Event>(CF_EVENTS, &k, v) {
            Some(e) if q.kind.is_none_or(|kind| e.kind == kind) => {
                out.push((k, e));
                true
            }
            _ => false,
        }
    }

    /// The ids of the hosts whose ids start with `<instance>/` (a cloud VM's addresses, current and
    /// past), from the history index: one seek per host.
    pub fn hosts_under(&self, instance: &str) -> Result<Vec<String>> {
        let index = self.cf(CF_EVENTS_BY_HOST)?;
        let prefix = format!("{instance}/").into_bytes();
        let mut seek = prefix.clone();
        let mut hosts = Vec::new();
        loop {
            let mut it = self
                .db
                .iterator_cf(index, IteratorMode::From(&seek, Direction::Forward));
            let Some(item) = it.next() else { break };
            let (k, _) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            let Some(end) = k.iter().position(|&b| b == 0) else {
                break; // not an index key; nothing of ours sorts after it
            };
            hosts.push(String::from_utf8_lossy(&k[..end]).into_owned());
            // Past every key of this host: its id, then the byte after the 0 separator.
            seek = k[..end].to_vec();
            seek.push(1);
            if hosts.len() >= MAX_HOSTS_UNDER {
                break;
            }
        }
        Ok(hosts)
    }

    /// Delete scan runs started before `scans_before` and events older than `events_before`, at
    /// most `budget` records each per call (retention runs after every scan, so it keeps up).
    pub fn prune(
        &self,
        scans_before: UnixSeconds,
        events_before: UnixSeconds,
        budget: usize,
    ) -> Result<(usize, usize)> {
        let mut batch = WriteBatch::default();
        let scans = self.cf(CF_SCANS)?;
        let mut n_scans = 0;
        for item in self.db.iterator_cf(scans, IteratorMode::Start) {
            let (k, v) = item?;
            let old = decode::<ScanRun>(CF_SCANS, &k, &v)
                .is_none_or(|r| r.started < scans_before && r.outcome != Outcome::Running);
            if !old || n_scans >= budget {
                break;
            }
            batch.delete_cf(scans, &k);
            n_scans += 1;
        }
        let (events, index) = (self.cf(CF_EVENTS)?, self.cf(CF_EVENTS_BY_HOST)?);
        let cutoff = event_key_from(events_before);
        let mut n_events = 0;
        for item in self.db.iterator_cf(events, IteratorMode::Start) {
            let (k, v) = item?;
            if k.as_ref() >= cutoff.as_slice() || n_events >= budget {
                break;
            }
            if let Some(e) = decode::<Event>(CF_EVENTS, &k, &v) {
                batch.delete_cf(index, host_index_key(&e.host, &k));
            }
            batch.delete_cf(events, &k);
            n_events += 1;
        }
        self.db.write(batch)?;
        Ok((n_scans, n_events))
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
mod tests;
