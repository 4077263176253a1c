//! Store: every write goes through [`Store::write`], which tells a full disk from other failures
//! and remembers whether the last write went through ([`Store::writable`]).
//!
//! When the disk fills, RocksDB latches a background error and refuses every write (reads go on),
//! so the agent keeps serving the last stored state. It also resumes by itself: its
//! `SstFileManager` polls the free space every 5 seconds and, once the largest memtable's worth
//! ([`MEMTABLE_BYTES`](super::open::MEMTABLE_BYTES)) is free, calls the same recovery as
//! `DB::Resume()` (flushes the memtables, starts a new WAL). rust-rocksdb 0.24 (RocksDB 10.4)
//! exposes no `resume` of its own, and RocksDB's C API has none either, so waiting for that
//! recovery is the way back; the next write after it succeeds and the store is writable again.
//! Nothing committed before is lost: a write either reached the WAL (and is replayed or flushed)
//! or was refused whole.

use super::{Error, Result, Store};
use rocksdb::{ErrorKind, WriteBatch, WriteOptions};
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether the store's last write went through (shared by every clone of the handle).
#[derive(Debug)]
pub(super) struct Health {
    writable: AtomicBool,
}

impl Default for Health {
    fn default() -> Health {
        Health {
            writable: AtomicBool::new(true),
        }
    }
}

/// Whether RocksDB refused a write because the disk (or a configured space limit) is full: an I/O
/// error with the NoSpace subcode (or the SpaceLimit one), which RocksDB only states in the text.
fn is_no_space(e: &rocksdb::Error) -> bool {
    let m = e.as_ref();
    e.kind() == ErrorKind::IOError
        && (m.contains("No space left on device") || m.contains("Space limit"))
}

impl Store {
    /// Whether the last write went through. False from a write that failed (a full disk, a file
    /// system gone read-only) until one succeeds again; reads keep working meanwhile.
    pub fn writable(&self) -> bool {
        self.health.writable.load(Ordering::Relaxed)
    }

    /// Write `batch` (fsync'd with `sync`). A full disk is [`Error::NoSpace`] (RocksDB resumes
    /// by itself once space is back: see the module docs).
    pub(super) fn write(&self, batch: WriteBatch, sync: bool) -> Result<()> {
        let mut opts = WriteOptions::default();
        opts.set_sync(sync);
        match self.db.write_opt(batch, &opts) {
            Ok(()) => {
                if !self.health.writable.swap(true, Ordering::Relaxed) {
                    tracing::info!(path = %self.path.display(), "the store accepts writes again");
                }
                Ok(())
            }
            Err(e) => {
                let was = self.health.writable.swap(false, Ordering::Relaxed);
                if is_no_space(&e) {
                    if was {
                        tracing::error!(path = %self.path.display(), error = %e,
                            "the store's disk is full; serving the last stored state until space is back");
                    }
                    return Err(Error::NoSpace {
                        path: self.path.clone(),
                        message: e.into_string(),
                    });
                }
                Err(Error::Db(e))
            }
        }
    }
}
