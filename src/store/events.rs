//! Store: reading the history. Events in time order, filtered by time, kind and host (through the
//! per-host index), with cursors for paging; and the hosts a cloud VM has had. Not for writing or
//! pruning events (`mod.rs`, `retention.rs`).
//!
//! [`Store::events_page`] bounds the work of one call: it examines at most [`MAX_EXAMINED`]
//! records (a rare kind over a long history would otherwise walk it all for one page) and says
//! where to continue. [`Store::events`] walks until `limit` match.

use super::schema::*;
use super::{decode, Result, Store, MAX_HOSTS_UNDER};
use crate::model::{Event, EventKind, UnixSeconds};
use rocksdb::{Direction, IteratorMode};

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

/// Records one [`Store::events_page`] call examines at most (events, or index entries with hosts).
pub const MAX_EXAMINED: usize = 50_000;

/// One page of events and where the next one starts.
#[derive(Debug, Default)]
pub struct EventPage {
    /// The events found, with their keys, in the query's order.
    pub events: Vec<(Vec<u8>, Event)>,
    /// Where the walk stopped before the end of the range (the page is full, or the records it
    /// may examine ran out): pass it as [`EventQuery::after`] to continue (oldest-first listings;
    /// for newest-first ones it is where the walk stopped, older events not yet looked at).
    /// `None`: nothing more in the range. A page may be empty and still have a `next`.
    pub next: Option<Vec<u8>>,
}

impl Store {
    /// History events in the query's order, filtered; returns them with their keys (for paging).
    /// Walks until `q.limit` match, however many records that takes: [`Store::events_page`] is
    /// the bounded form.
    pub fn events(&self, q: &EventQuery) -> Result<Vec<(Vec<u8>, Event)>> {
        Ok(self.walk(q, usize::MAX)?.events)
    }

    /// One page of [`Store::events`], examining at most [`MAX_EXAMINED`] records; see
    /// [`EventPage`].
    pub fn events_page(&self, q: &EventQuery) -> Result<EventPage> {
        self.walk(q, MAX_EXAMINED)
    }

    /// The events of `q`, examining at most `budget` records.
    fn walk(&self, q: &EventQuery, budget: usize) -> Result<EventPage> {
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
        if q.hosts.is_empty() {
            return self.walk_all(q, &range, budget);
        }
        // Each host's first `limit` events (through the index), merged: any event among the first
        // `limit` of all of them is among the first `limit` of its own host. A host whose share of
        // the budget ran out was looked at only up to where it stopped, so the page ends there
        // (at the earliest such stop; the latest, newest first).
        let share = (budget / q.hosts.len()).max(1);
        let mut out = Vec::new();
        let mut horizon: Option<Vec<u8>> = None;
        for host in &q.hosts {
            if let Some(cut) = self.host_events(host, q, &range, share, &mut out)? {
                horizon = Some(match horizon {
                    Some(h) if q.newest_first => h.max(cut),
                    Some(h) => h.min(cut),
                    None => cut,
                });
            }
        }
        if q.newest_first {
            out.sort_by(|a, b| b.0.cmp(&a.0));
        } else {
            out.sort_by(|a, b| a.0.cmp(&b.0));
        }
        out.dedup_by(|a, b| a.0 == b.0);
        if let Some(h) = &horizon {
            out.retain(|(k, _)| if q.newest_first { k >= h } else { k <= h });
        }
        let full = out.len() >= q.limit;
        out.truncate(q.limit);
        let next = match full {
            true => out.last().map(|(k, _)| k.clone()),
            false => horizon,
        };
        Ok(EventPage { events: out, next })
    }

    /// Every event in `range` of `q`'s kind, oldest first, examining at most `budget` of them.
    fn walk_all(&self, q: &EventQuery, range: &KeyRange, budget: usize) -> Result<EventPage> {
        let events = self.cf(CF_EVENTS)?;
        let mode = IteratorMode::From(&range.from, Direction::Forward);
        let mut out = Vec::new();
        let (mut examined, mut last) = (0, None);
        for item in self.db.iterator_cf(events, mode) {
            let (k, v) = item?;
            if !range.before_until(&k) {
                break;
            }
            if out.len() >= q.limit {
                let next = out.last().map(|(k, _): &(Vec<u8>, Event)| k.clone());
                return Ok(EventPage { events: out, next });
            }
            if examined >= budget {
                return Ok(EventPage {
                    events: out,
                    next: last,
                });
            }
            examined += 1;
            self.keep(q, k.to_vec(), &v, &mut out);
            last = Some(k.to_vec());
        }
        Ok(EventPage {
            events: out,
            next: None,
        })
    }

    /// Up to `q.limit` events of one host within `range`, in `q`'s order, appended to `out`,
    /// examining at most `budget` index entries; the key where it stopped if that ran out first.
    fn host_events(
        &self,
        host: &str,
        q: &EventQuery,
        range: &KeyRange,
        budget: usize,
        out: &mut Vec<(Vec<u8>, Event)>,
    ) -> Result<Option<Vec<u8>>> {
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
        let (mut n, mut examined, mut last) = (0, 0, None);
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
            if examined >= budget {
                return Ok(last);
            }
            examined += 1;
            // An entry whose event is gone (a record too corrupt to prune by host) is skipped.
            if let Some(v) = self.db.get_cf(events, ek)? {
                n += usize::from(self.keep(q, ek.to_vec(), &v, out));
            }
            last = Some(ek.to_vec());
        }
        Ok(None)
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
}
