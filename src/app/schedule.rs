//! When a stage runs next. After a success: its interval (plus jitter) from that success, so a
//! restart resumes the schedule. After a failure, one backoff policy for every stage: a minute,
//! doubling with each failure in a row, at most half an hour and never longer than the stage's own
//! interval — counted from the failure, so other work waking the loop never postpones a retry.

use crate::model::UnixSeconds;
use crate::state::StageStatus;
use std::time::Duration;

/// The first retry after a failure.
pub const FIRST_RETRY: Duration = Duration::from_secs(60);
/// The longest wait between retries.
pub const MAX_RETRY: Duration = Duration::from_secs(30 * 60);

/// How long to wait after the `failures`-th failure in a row of a stage run every `interval`.
pub fn retry_after(failures: u32, interval: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_RETRY
        .saturating_mul(1 << doublings)
        .min(MAX_RETRY)
        .min(interval)
}

/// Record a finished run (at `t`) in the stage's status: a success clears the backoff, a failure
/// schedules the next attempt.
pub fn record(s: &mut StageStatus, ok: bool, t: UnixSeconds) {
    s.in_progress = false;
    s.last_ok = Some(ok);
    if ok {
        s.last_success = Some(t);
        s.failures = 0;
        s.retry_at = None;
    } else {
        s.failures = s.failures.saturating_add(1);
        s.retry_at = Some(t + retry_after(s.failures, s.interval).as_secs_f64());
    }
}

/// How long until the stage is due: the retry after a failure, else the interval after the last
/// success (see [`next_delay`]).
pub fn due(s: &StageStatus, now: UnixSeconds, jitter_fraction: f64) -> Duration {
    match s.retry_at {
        Some(at) if s.last_ok == Some(false) => Duration::from_secs_f64((at - now).max(0.0)),
        _ => next_delay(s.last_success, now, s.interval, s.jitter, jitter_fraction),
    }
}

/// How long to wait before the next run: nothing on a first start (no success yet); the rest of the
/// interval after a recent success; else just `jitter_fraction` (0..1) of the jitter.
pub fn next_delay(
    last_success: Option<UnixSeconds>,
    now: UnixSeconds,
    interval: Duration,
    jitter: Duration,
    jitter_fraction: f64,
) -> Duration {
    let jitter = jitter.mul_f64(jitter_fraction.clamp(0.0, 1.0));
    match last_success {
        Some(last) if now - last < interval.as_secs_f64() && now >= last => {
            Duration::from_secs_f64(interval.as_secs_f64() - (now - last)) + jitter
        }
        None => Duration::ZERO,
        _ => jitter,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(interval: u64) -> StageStatus {
        StageStatus {
            interval: Duration::from_secs(interval),
            ..StageStatus::default()
        }
    }

    #[test]
    fn retries_double_up_to_the_cap_and_the_interval() {
        let day = Duration::from_secs(86_400);
        let waits: Vec<u64> = (1..=7).map(|n| retry_after(n, day).as_secs()).collect();
        assert_eq!(waits, [60, 120, 240, 480, 960, 1800, 1800]);
        assert_eq!(retry_after(3, Duration::from_secs(100)).as_secs(), 100);
        assert_eq!(retry_after(u32::MAX, day), MAX_RETRY);
    }

    #[test]
    fn a_retry_is_counted_from_the_failure_not_from_each_wakeup() {
        let mut s = stage(3600);
        record(&mut s, false, 1000.0);
        // Asked again and again (the loop woke for other work): the retry does not move.
        assert_eq!(due(&s, 1000.0, 0.0), Duration::from_secs(60));
        assert_eq!(due(&s, 1030.0, 0.0), Duration::from_secs(30));
        assert_eq!(due(&s, 1059.0, 0.0), Duration::from_secs(1));
        assert_eq!(due(&s, 2000.0, 0.0), Duration::ZERO);
        record(&mut s, false, 1060.0);
        assert_eq!(due(&s, 1060.0, 0.0), Duration::from_secs(120));
        // A success resets the backoff: the interval from the success.
        record(&mut s, true, 1200.0);
        assert_eq!((s.failures, s.retry_at), (0, None));
        assert_eq!(due(&s, 1200.0, 0.0), Duration::from_secs(3600));
        record(&mut s, false, 5000.0);
        assert_eq!(due(&s, 5000.0, 0.0), Duration::from_secs(60));
    }

    #[test]
    fn schedule_resumes_the_interval_after_a_restart() {
        let i = Duration::from_secs(900);
        let j = Duration::from_secs(30);
        // Never scanned: now (plus jitter).
        assert_eq!(next_delay(None, 1000.0, i, j, 0.0), Duration::ZERO);
        assert_eq!(next_delay(None, 1000.0, i, j, 1.0), Duration::ZERO);
        // Scanned 100 s ago: wait the remaining 800 s.
        assert_eq!(
            next_delay(Some(900.0), 1000.0, i, j, 0.0),
            Duration::from_secs(800)
        );
        // Overdue: now, plus jitter.
        assert_eq!(next_delay(Some(0.0), 1000.0, i, j, 0.0), Duration::ZERO);
        assert_eq!(next_delay(Some(0.0), 1000.0, i, j, 1.0), j);
        // A clock that went backwards does not postpone the scan for ever.
        assert_eq!(next_delay(Some(5000.0), 1000.0, i, j, 0.0), Duration::ZERO);
        // A restart after a failure (no retry time known): due as the interval says.
        let restarted = StageStatus {
            last_ok: Some(false),
            last_success: Some(900.0),
            ..stage(900)
        };
        assert_eq!(due(&restarted, 1000.0, 0.0), Duration::from_secs(800));
    }
}
