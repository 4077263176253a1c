//! Store: retention. One call deletes everything past its time — scan runs, events with their
//! per-host index entries, resolved findings — however much that is, so retention never falls
//! behind a fleet that writes more per pass than any fixed budget. Not for the retention policy
//! (the caller passes the cut-off times).
//!
//! Events are keyed by time (big-endian), so those below the cut-off are one key range, deleted
//! with range tombstones: constant work for the events themselves, whatever their number. The
//! per-host index (`host, 0, event key`) is ordered by host first, so it cannot be cut by time;
//! its entries are deleted one by one, found by walking the expiring events (which name their
//! host), in batches of [`BATCH`] that also range-delete their events: each batch is atomic, so
//! the index never points past what the events hold, an interrupted call leaves a consistent
//! store and the next call carries on. That keeps the index exact (no dangling entries waiting
//! for a compaction, which may never touch a quiet host's keys) and the store's size flat; the
//! work is the number of expiring events, each written once, so it is paid once per event.
//! Readers still skip an index entry whose event is gone (a record too corrupt to name its host).

use super::schema::*;
use super::{decode, Result, Store};
use crate::model::{FindingState, Outcome, ScanRun, UnixSeconds};
use rocksdb::{IteratorMode, ReadOptions, WriteBatch};

/// Deletes per write batch while pruning: bounds the memory of one call, not its work.
const BATCH: usize = 10_000;

/// The smallest key after `k` (an exclusive range end that keeps `k` in the range).
fn after(k: &[u8]) -> Vec<u8> {
    let mut next = k.to_vec();
    next.push(0);
    next
}

/// Only an event's host: all the index key needs.
#[derive(serde::Deserialize)]
struct EventHost {
    host: String,
}

/// Only what retention needs of a finding (the rest of the record is skipped, not built).
#[derive(serde::Deserialize)]
struct Resolution {
    id: String,
    state: FindingState,
    #[serde(default)]
    resolved_at: Option<UnixSeconds>,
}

impl Store {
    /// Delete the scan runs started before `scans_before` (never a running or queued one) and the
    /// events older than `events_before` with their index entries: all of them, in batches;
    /// returns how many of each.
    pub fn prune(
        &self,
        scans_before: UnixSeconds,
        events_before: UnixSeconds,
    ) -> Result<(usize, usize)> {
        Ok((
            self.prune_scans(scans_before)?,
            self.prune_events(events_before)?,
        ))
    }

    /// Runs are keyed by id, which grows with their start: walk from the oldest while they
    /// started before the cut and range-delete each stretch of finished ones, stepping over a run
    /// still running or queued (kept, whatever its age).
    fn prune_scans(&self, before: UnixSeconds) -> Result<usize> {
        let cf = self.cf(CF_SCANS)?;
        let mut batch = WriteBatch::default();
        let mut stretch: Option<(Vec<u8>, Vec<u8>)> = None;
        let mut n = 0;
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (k, v) = item?;
            // An unreadable record is old news: deleted with its neighbours.
            let run = decode::<ScanRun>(CF_SCANS, &k, &v);
            if run.as_ref().is_some_and(|r| r.started >= before) {
                break;
            }
            if run.is_some_and(|r| matches!(r.outcome, Outcome::Running | Outcome::Queued)) {
                if let Some((from, last)) = stretch.take() {
                    batch.delete_range_cf(cf, from, after(&last));
                }
                continue;
            }
            match &mut stretch {
                Some((_, last)) => *last = k.to_vec(),
                None => stretch = Some((k.to_vec(), k.to_vec())),
            }
            n += 1;
        }
        if let Some((from, last)) = stretch {
            batch.delete_range_cf(cf, from, after(&last));
        }
        if n > 0 {
            self.write(batch, false)?;
        }
        Ok(n)
    }

    /// See the module docs: index entries one by one, events by range, a batch at a time.
    fn prune_events(&self, before: UnixSeconds) -> Result<usize> {
        let (events, index) = (self.cf(CF_EVENTS)?, self.cf(CF_EVENTS_BY_HOST)?);
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(event_key_from(before).to_vec());
        ro.fill_cache(false);
        let mut batch = WriteBatch::default();
        let (mut first, mut last): (Option<Vec<u8>>, Vec<u8>) = (None, Vec::new());
        let (mut in_batch, mut n) = (0, 0);
        for item in self.db.iterator_cf_opt(events, ro, IteratorMode::Start) {
            let (k, v) = item?;
            match serde_json::from_slice::<EventHost>(&v) {
                Ok(e) => batch.delete_cf(index, host_index_key(&e.host, &k)),
                Err(e) => tracing::error!(key = %to_hex(&k), error = %e,
                    "deleting a corrupt event record; its host index entry (if any) stays, unused"),
            }
            first.get_or_insert_with(|| k.to_vec());
            last = k.to_vec();
            in_batch += 1;
            if in_batch == BATCH {
                if let Some(from) = first.take() {
                    batch.delete_range_cf(events, from, after(&last));
                }
                self.write(std::mem::take(&mut batch), false)?;
                n += in_batch;
                in_batch = 0;
            }
        }
        if let Some(from) = first {
            batch.delete_range_cf(events, from, after(&last));
            self.write(batch, false)?;
            n += in_batch;
        }
        Ok(n)
    }

    /// Delete the findings resolved before `before`, all of them in one batch (findings are
    /// bounded by the fleet's open ports and held in memory anyway), so the caller's view and the
    /// store agree whatever happens; returns their ids.
    pub fn prune_findings(&self, before: UnixSeconds) -> Result<Vec<String>> {
        let cf = self.cf(CF_FINDINGS)?;
        let mut batch = WriteBatch::default();
        let mut gone = Vec::new();
        for item in self.db.iterator_cf(cf, IteratorMode::Start) {
            let (k, v) = item?;
            let Some(f) = decode::<Resolution>(CF_FINDINGS, &k, &v) else {
                continue;
            };
            if f.state == FindingState::Resolved && f.resolved_at.is_some_and(|t| t < before) {
                batch.delete_cf(cf, &k);
                gone.push(f.id);
            }
        }
        if !gone.is_empty() {
            self.write(batch, false)?;
        }
        Ok(gone)
    }
}
