//! Scan timing: per-host round-trip estimators that turn measured connect times into probe timeouts
//! (smoothed RTT + 4 × variance, as TCP and nmap do), and lock-free pacing for probe-rate limits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

/// Timeout policy: fixed bounds around what the estimator measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TimeoutBounds {
    /// Used for a host until its first answer has been timed.
    pub initial: Duration,
    pub min: Duration,
    pub max: Duration,
}

/// One host's RTT estimate, packed into an atomic: smoothed RTT and mean deviation in microseconds.
/// Zero means "no sample yet". Racing updates may drop a sample, which an estimator can afford.
#[derive(Default)]
struct Estimator(AtomicU64);

impl Estimator {
    fn get(&self) -> Option<(u32, u32)> {
        let v = self.0.load(Ordering::Relaxed);
        (v != 0).then_some(((v >> 32) as u32, v as u32))
    }

    /// Feed one sample; returns true when it was the first.
    fn update(&self, sample_us: u32) -> bool {
        let sample = sample_us.max(1);
        let mut cur = self.0.load(Ordering::Relaxed);
        loop {
            let (srtt, var) = if cur == 0 {
                (sample, sample / 2)
            } else {
                let (s, v) = ((cur >> 32) as u32, cur as u32);
                let err = sample as i64 - s as i64;
                let srtt = (s as i64 + err / 8).max(1) as u32;
                let var = (v as i64 + (err.abs() - v as i64) / 4).max(0) as u32;
                (srtt, var)
            };
            let new = ((srtt as u64) << 32) | var as u64;
            match self
                .0
                .compare_exchange_weak(cur, new, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return cur == 0,
                Err(c) => cur = c,
            }
        }
    }
}

/// Per-host timing for one scan.
pub(crate) struct Timing {
    bounds: TimeoutBounds,
    hosts: Vec<Estimator>,
    /// Woken when a host gets its first sample, so probes started with the initial timeout re-arm.
    first_sample: Vec<Notify>,
}

impl Timing {
    pub fn new(hosts: usize, bounds: TimeoutBounds) -> Timing {
        Timing {
            bounds,
            hosts: (0..hosts).map(|_| Estimator::default()).collect(),
            first_sample: (0..hosts).map(|_| Notify::new()).collect(),
        }
    }

    /// The timeout for a probe to `host`, and whether it is measured (false: the initial guess).
    pub fn timeout(&self, host: usize) -> (Duration, bool) {
        match self.hosts[host].get() {
            None => (self.bounds.initial, false),
            Some((srtt, var)) => {
                let t = Duration::from_micros(srtt as u64 + 4 * var as u64);
                (t.clamp(self.bounds.min, self.bounds.max), true)
            }
        }
    }

    /// Record how long an answered probe took.
    pub fn observe(&self, host: usize, rtt: Duration) {
        let us = rtt.as_micros().min(u32::MAX as u128) as u32;
        if self.hosts[host].update(us) {
            self.first_sample[host].notify_waiters();
        }
    }

    pub fn first_sample(&self, host: usize) -> &Notify {
        &self.first_sample[host]
    }

    /// Smoothed RTT of a host, if measured (for logs and the API).
    pub fn srtt(&self, host: usize) -> Option<Duration> {
        self.hosts[host]
            .get()
            .map(|(s, _)| Duration::from_micros(s as u64))
    }
}

/// A pacing slot for a rate limit: each caller reserves the next send time, `1/rate` apart.
pub(crate) struct Pacer {
    interval_ns: u64,
    next_ns: AtomicU64,
}

impl Pacer {
    /// `rate` probes per second; `None` for 0 (unlimited).
    pub fn new(rate: u64) -> Option<Pacer> {
        (rate > 0).then(|| Pacer {
            interval_ns: (1_000_000_000 / rate).max(1),
            next_ns: AtomicU64::new(0),
        })
    }

    /// Reserve a send slot; returns when to send, or `None` to send now.
    pub fn reserve(&self, origin: Instant) -> Option<Instant> {
        let now = origin.elapsed().as_nanos() as u64;
        let mut cur = self.next_ns.load(Ordering::Relaxed);
        loop {
            let at = cur.max(now);
            match self.next_ns.compare_exchange_weak(
                cur,
                at + self.interval_ns,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return (at > now).then(|| origin + Duration::from_nanos(at)),
                Err(c) => cur = c,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounds() -> TimeoutBounds {
        TimeoutBounds {
            initial: Duration::from_secs(1),
            min: Duration::from_millis(100),
            max: Duration::from_secs(3),
        }
    }

    #[test]
    fn unmeasured_hosts_use_the_initial_timeout() {
        let t = Timing::new(2, bounds());
        assert_eq!(t.timeout(0), (Duration::from_secs(1), false));
    }

    #[test]
    fn timeouts_follow_measured_rtt_within_bounds() {
        let t = Timing::new(2, bounds());
        for _ in 0..20 {
            t.observe(0, Duration::from_millis(300));
        }
        let (d, measured) = t.timeout(0);
        assert!(measured);
        assert!(
            d >= Duration::from_millis(300) && d < Duration::from_millis(900),
            "{d:?}"
        );
        // Fast host: clamped to the minimum.
        t.observe(1, Duration::from_micros(50));
        assert_eq!(t.timeout(1).0, Duration::from_millis(100));
        // Very slow host: clamped to the maximum.
        let t = Timing::new(1, bounds());
        t.observe(0, Duration::from_secs(10));
        assert_eq!(t.timeout(0).0, Duration::from_secs(3));
    }

    #[test]
    fn variance_widens_the_timeout() {
        let steady = Timing::new(1, bounds());
        let jittery = Timing::new(1, bounds());
        for i in 0..40 {
            steady.observe(0, Duration::from_millis(200));
            let ms = if i % 2 == 0 { 100 } else { 300 };
            jittery.observe(0, Duration::from_millis(ms));
        }
        assert!(jittery.timeout(0).0 > steady.timeout(0).0);
    }

    #[tokio::test(start_paused = true)]
    async fn pacer_spaces_sends() {
        let p = Pacer::new(10).unwrap();
        let origin = Instant::now();
        assert!(p.reserve(origin).is_none(), "first send goes at once");
        let second = p.reserve(origin).unwrap();
        let third = p.reserve(origin).unwrap();
        assert_eq!(second - origin, Duration::from_millis(100));
        assert_eq!(third - second, Duration::from_millis(100));
        assert!(Pacer::new(0).is_none());
    }
}
