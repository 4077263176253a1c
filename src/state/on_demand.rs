//! On-demand scans between the API and the agent's loop: the queue of runs users asked for
//! (`POST /api/v1/scans`), each user's recent requests for the rate limit, and the signal that
//! wakes the loop. The API admits and queues; the loop takes one run at a time when no pass is
//! under way.

use crate::model::{ScanRun, UnixSeconds};
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// At most this many runs wait at once (the API answers 429 beyond).
pub const MAX_QUEUED: usize = 64;

/// The window of the per-user rate limit, in seconds.
const WINDOW: f64 = 60.0;

/// Why a request is not admitted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Refused {
    /// The user asked `max_per_minute` times within the last minute: retry after this many seconds.
    RateLimited { retry_after: u64 },
    /// [`MAX_QUEUED`] runs are waiting already.
    QueueFull,
}

#[derive(Debug, Default)]
struct Inner {
    queue: VecDeque<ScanRun>,
    /// When each user's requests of the last minute were admitted.
    recent: HashMap<String, VecDeque<UnixSeconds>>,
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct OnDemand {
    inner: Mutex<Inner>,
    queued: tokio::sync::Notify,
}

impl OnDemand {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Count a request of `user` at `now` against `max_per_minute` (0: no limit), or say why not.
    pub fn admit(&self, user: &str, now: UnixSeconds, max_per_minute: u32) -> Result<(), Refused> {
        let mut inner = self.lock();
        if inner.queue.len() >= MAX_QUEUED {
            return Err(Refused::QueueFull);
        }
        inner.recent.retain(|_, times| {
            while times.front().is_some_and(|t| now - t >= WINDOW) {
                times.pop_front();
            }
            !times.is_empty()
        });
        let times = inner.recent.entry(user.to_owned()).or_default();
        if max_per_minute > 0 && times.len() >= max_per_minute as usize {
            let oldest = times.front().copied().unwrap_or(now);
            let retry_after = (oldest + WINDOW - now).ceil().max(1.0) as u64;
            return Err(Refused::RateLimited { retry_after });
        }
        times.push_back(now);
        Ok(())
    }

    /// The queued run that asks for exactly these targets and ports, to answer with instead of a
    /// new one.
    pub fn same_as(&self, hosts: &[String], ports: Option<&str>) -> Option<ScanRun> {
        self.lock()
            .queue
            .iter()
            .find(|r| {
                r.request
                    .as_ref()
                    .is_some_and(|q| q.hosts == hosts && q.ports.as_deref() == ports)
            })
            .cloned()
    }

    /// Queue a run (recorded in the store as queued) and wake the loop.
    pub fn push(&self, run: ScanRun) {
        self.lock().queue.push_back(run);
        self.queued.notify_one();
    }

    /// The next queued run, if any.
    pub fn pop(&self) -> Option<ScanRun> {
        self.lock().queue.pop_front()
    }

    /// The queued run with this id, if it is still waiting.
    pub fn get(&self, id: u64) -> Option<ScanRun> {
        self.lock().queue.iter().find(|r| r.id == id).cloned()
    }

    /// Completes when a run was queued (at once if one was since the last wait).
    pub async fn queued(&self) {
        self.queued.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Outcome, ScanRequest, Stage};

    fn run(id: u64, hosts: &[&str], ports: Option<&str>) -> ScanRun {
        ScanRun {
            id,
            stage: Stage::Discovery,
            started: 0.0,
            finished: None,
            outcome: Outcome::Queued,
            groups: Vec::new(),
            targets: 0,
            ports: 0,
            probes: Default::default(),
            hosts_up: 0,
            open_ports: 0,
            unexpected_ports: 0,
            errors: Vec::new(),
            request: Some(ScanRequest {
                by: "alice".into(),
                at: 0.0,
                targets: Vec::new(),
                ports: ports.map(str::to_owned),
                hosts: hosts.iter().map(|h| h.to_string()).collect(),
            }),

            trigger: crate::model::Trigger::OnDemand,
        }
    }

    #[test]
    fn each_user_gets_max_per_minute() {
        let q = OnDemand::default();
        for i in 0..3 {
            assert_eq!(q.admit("alice", 100.0 + f64::from(i), 3), Ok(()));
        }
        assert_eq!(
            q.admit("alice", 110.0, 3),
            Err(Refused::RateLimited { retry_after: 50 })
        );
        // Others are not held up by alice.
        assert_eq!(q.admit("bob", 110.0, 3), Ok(()));
        // The first request leaves the window a minute after it was admitted.
        assert_eq!(q.admit("alice", 160.0, 3), Ok(()));
        assert!(q.admit("alice", 160.5, 3).is_err());
        // 0: no limit.
        for i in 0..100 {
            assert_eq!(q.admit("carol", f64::from(i) / 100.0, 0), Ok(()));
        }
    }

    #[test]
    fn the_queue_is_bounded_and_fifo() {
        let q = OnDemand::default();
        for i in 0..MAX_QUEUED as u64 {
            q.push(run(i + 1, &["127.0.0.1"], None));
        }
        assert_eq!(q.admit("alice", 0.0, 0), Err(Refused::QueueFull));
        assert_eq!(q.get(3).map(|r| r.id), Some(3));
        assert_eq!(q.pop().map(|r| r.id), Some(1));
        assert_eq!(q.pop().map(|r| r.id), Some(2));
        assert_eq!(q.admit("alice", 0.0, 0), Ok(()));
    }

    #[test]
    fn identical_requests_are_coalesced() {
        let q = OnDemand::default();
        q.push(run(7, &["127.0.0.1", "127.0.0.2"], Some("22")));
        let hosts = ["127.0.0.1".to_string(), "127.0.0.2".to_string()];
        assert_eq!(q.same_as(&hosts, Some("22")).map(|r| r.id), Some(7));
        assert!(q.same_as(&hosts, None).is_none());
        assert!(q.same_as(&hosts[..1], Some("22")).is_none());
        q.pop();
        assert!(q.same_as(&hosts, Some("22")).is_none());
    }
}
