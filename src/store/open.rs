//! Store: opening the database. Reads an existing directory's schema read-only before anything is
//! written to it, sizes RocksDB for an agent, reads every stored block once so that a damaged file
//! is found at start-up rather than mid-pass, and turns RocksDB's open errors into messages that
//! name the path and what to do. Not for queries or writes (`mod.rs`, `retention.rs`).

use super::schema::*;
use super::{Error, Health, Result, Store};
use rocksdb::{ColumnFamilyDescriptor, IteratorMode, Options, ReadOptions, DB};
use std::path::Path;
use std::sync::Arc;

/// One column family's memtable: flushed to disk when it reaches this size. Also the free space
/// RocksDB waits for before it resumes writing after the disk filled up (its `SstFileManager`
/// reserves the largest memtable of any column family, the `default` one included).
pub(super) const MEMTABLE_BYTES: usize = 4 << 20;
/// All memtables together: past it RocksDB flushes the largest. A large cloud's full inventory
/// writes megabytes of VM records at once, and that peak is the agent's (`benches/detect.sh`);
/// a flush of a few MiB more often costs nothing an agent notices.
const MEMTABLE_BUDGET: usize = 8 << 20;
/// The block cache all column families share.
const BLOCK_CACHE_BYTES: usize = 8 << 20;

/// What to do about an error RocksDB gave when opening (`message`, its text).
pub(super) fn open_hint(message: &str) -> &'static str {
    let m = message.to_ascii_lowercase();
    if m.contains("lock hold") || m.contains("resource temporarily unavailable") {
        "is another stinger process using this --storage.path? Stop it or choose another directory"
    } else if m.contains("corruption") || m.contains("checksum") {
        "the store is corrupt: stop stinger, move the directory aside (keep it for a post-mortem) \
         and start again with an empty one, or restore a backup of it"
    } else if m.contains("permission denied") || m.contains("operation not permitted") {
        "stinger cannot write there: check the owner and mode of the directory and its files \
         (the user running stinger must own them, e.g. chown -R stinger: on the directory)"
    } else if m.contains("read-only file system") {
        "the file system is mounted read-only: remount it read-write (check the kernel log for \
         why it went read-only) or choose another --storage.path"
    } else if m.contains("no space left") {
        "the disk is full: free space on it or choose another --storage.path"
    } else if m.contains("no such file") || m.contains("not a directory") {
        "check that the parent directory exists and the path is a directory"
    } else {
        "check the path and the disk; the RocksDB message above says more"
    }
}

fn open_error(path: &Path) -> impl Fn(rocksdb::Error) -> Error + '_ {
    move |e| {
        let message = e.into_string();
        Error::Open {
            path: path.to_path_buf(),
            hint: open_hint(&message),
            message,
        }
    }
}

/// Read an existing database's schema version without changing it (opened read-only): refuse a
/// stinger store of another version and a RocksDB that is not a stinger store at all.
fn check_existing(path: &Path) -> Result<()> {
    let cfs = DB::list_cf(&Options::default(), path).map_err(open_error(path))?;
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
    let db = DB::open_cf_for_read_only(&Options::default(), path, &cfs, false)
        .map_err(open_error(path))?;
    let found = match db.cf_handle(CF_META) {
        Some(meta) => db.get_cf(meta, META_SCHEMA).map_err(open_error(path))?,
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

fn options() -> (Options, rocksdb::Cache) {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    opts.set_keep_log_file_num(4);
    opts.set_max_log_file_size(4 << 20);
    // Memory: RocksDB's defaults (a 64 MiB memtable and a 32 MiB block cache for each column
    // family) suit a database server, not an agent whose state is tens of MB. Memtables share
    // one budget and flush early; reads share one small cache.
    opts.set_db_write_buffer_size(MEMTABLE_BUDGET);
    // A family written a little every pass (runs, meta) fills its memtable only after weeks, and
    // keeps every WAL file since alive meanwhile: past this total, RocksDB flushes the families
    // holding the oldest one, so the WAL stays within what the memtables may hold.
    opts.set_max_total_wal_size(MEMTABLE_BUDGET as u64);
    (opts, rocksdb::Cache::new_lru_cache(BLOCK_CACHE_BYTES))
}

impl Store {
    /// Open (or create) the store at `path`, checking its schema version — before anything is
    /// written to it: a store of another version, or another program's RocksDB, is refused as it
    /// was found (no column family added). Every stored block is read once (checksums verified),
    /// so a damaged file is an [`Error::Open`] now that says what to do, not an error in the
    /// middle of a pass.
    pub fn open(path: &Path) -> Result<Store> {
        if path.join("CURRENT").exists() {
            check_existing(path)?;
        }
        let (opts, cache) = options();
        // `default` (unused) too: rust-rocksdb would open it with RocksDB's default 64 MiB
        // memtable, and RocksDB waits for the largest memtable's worth of free space before it
        // resumes after a full disk (and preallocates WAL files by it).
        let names = ALL_CFS.iter().chain([&rocksdb::DEFAULT_COLUMN_FAMILY_NAME]);
        let cfs = names.map(|name| {
            let mut o = Options::default();
            o.set_compression_type(rocksdb::DBCompressionType::Lz4);
            o.set_write_buffer_size(MEMTABLE_BYTES);
            let mut table = rocksdb::BlockBasedOptions::default();
            table.set_block_cache(&cache);
            o.set_block_based_table_factory(&table);
            ColumnFamilyDescriptor::new(*name, o)
        });
        let db = DB::open_cf_descriptors(&opts, path, cfs).map_err(open_error(path))?;
        let store = Store {
            db: Arc::new(db),
            path: path.to_path_buf(),
            run_ids: Arc::default(),
            health: Arc::new(Health::default()),
        };
        store.verify()?;
        store.check_schema()?;
        Ok(store)
    }

    /// Read every record of every column family (checksums verified, the cache left alone).
    fn verify(&self) -> Result<()> {
        for name in ALL_CFS {
            let mut ro = ReadOptions::default();
            ro.fill_cache(false);
            ro.set_verify_checksums(true);
            ro.set_readahead_size(1 << 20);
            for item in self
                .db
                .iterator_cf_opt(self.cf(name)?, ro, IteratorMode::Start)
            {
                item.map_err(open_error(&self.path))?;
            }
        }
        Ok(())
    }

    fn check_schema(&self) -> Result<()> {
        let meta = self.cf(CF_META)?;
        match self.db.get_cf(meta, META_SCHEMA)? {
            None => {
                let mut batch = rocksdb::WriteBatch::default();
                batch.put_cf(meta, META_SCHEMA, SCHEMA_VERSION.to_string());
                self.write(batch, true).map_err(|e| match e {
                    Error::Db(e) => open_error(&self.path)(e),
                    e => e,
                })
            }
            Some(v) if v == SCHEMA_VERSION.to_string().as_bytes() => Ok(()),
            Some(v) => Err(Error::Schema {
                path: self.path.clone(),
                found: String::from_utf8_lossy(&v).into_owned(),
                expected: SCHEMA_VERSION,
            }),
        }
    }
}
