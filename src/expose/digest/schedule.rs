//! When digests are due: every `interval` after the last one, or each day when the wall clock of a
//! time zone shows `at` (through jiff and the system's tzdb, so daylight saving time moves the
//! instant, not the local time). Pure: the caller passes the times.

use crate::model::UnixSeconds;
use jiff::civil::Time;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use std::time::Duration;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// How often.
#[derive(Debug, Clone, PartialEq)]
pub enum When {
    /// This long after the last digest.
    Every(Duration),
    /// The first time after the last digest that the zone's clock shows this time. On a day that
    /// skips it (clocks go forward) the digest goes out as many minutes after the gap; on a day
    /// that shows it twice (clocks go back), at the first.
    DailyAt(Time),
}

/// The digest's schedule and the time zone its times are read (and shown) in.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub when: When,
    pub tz: TimeZone,
}

impl Schedule {
    /// The next digest after one at `t`.
    pub fn next_after(&self, t: UnixSeconds) -> UnixSeconds {
        match &self.when {
            When::Every(d) => t + d.as_secs_f64(),
            When::DailyAt(at) => daily_after(t, *at, &self.tz).unwrap_or(t + DAY.as_secs_f64()),
        }
    }

    /// When the next digest is due after one at `last`: [`Schedule::next_after`], counted from
    /// now instead when the clock was set back behind `last` (never waiting for the clock to
    /// catch up).
    pub fn next_due(&self, last: UnixSeconds, now: UnixSeconds) -> UnixSeconds {
        self.next_after(if now < last { now } else { last })
    }

    /// Whether recipients whose last digest went out at `last` (`None`: never) are due one now.
    pub fn is_due(&self, last: Option<UnixSeconds>, now: UnixSeconds) -> bool {
        last.is_none_or(|l| self.next_due(l, now) <= now)
    }

    /// How long until a digest is due, given the oldest last digest of any recipients (`None`:
    /// some never had one). Those get their first digest as soon as a discovery run has succeeded
    /// (so it reports a scan), else not yet (`None`).
    pub fn due_in(
        &self,
        last: Option<UnixSeconds>,
        discovered: bool,
        now: UnixSeconds,
    ) -> Option<Duration> {
        match last {
            Some(l) => Some(Duration::from_secs_f64(
                (self.next_due(l, now) - now).max(0.0),
            )),
            None if discovered => Some(Duration::ZERO),
            None => None,
        }
    }

    /// The longest a failed digest waits for its retry (the stages' backoff is capped by it).
    pub fn period(&self) -> Duration {
        match self.when {
            When::Every(d) => d,
            When::DailyAt(_) => DAY,
        }
    }

    /// `every 24h`, `daily at 07:00 Europe/Berlin`.
    pub fn describe(&self) -> String {
        match &self.when {
            When::Every(d) => format!("every {}", humantime::format_duration(*d)),
            When::DailyAt(at) => format!(
                "daily at {} {}",
                at.strftime("%H:%M"),
                self.tz.iana_name().unwrap_or("UTC")
            ),
        }
    }
}

/// The first instant after `t` at which `tz`'s clock shows `at`.
fn daily_after(t: UnixSeconds, at: Time, tz: &TimeZone) -> Option<UnixSeconds> {
    let nanos = (t * 1e9) as i128;
    let ts = Timestamp::from_nanosecond(nanos).ok()?;
    let mut date = ts.to_zoned(tz.clone()).date();
    // Today's time may be past already; tomorrow's never is (a day is at least 23 hours).
    for _ in 0..3 {
        let zoned = tz
            .to_ambiguous_zoned(date.to_datetime(at))
            .compatible()
            .ok()?;
        if zoned.timestamp() > ts {
            return Some(zoned.timestamp().as_second() as f64);
        }
        date = date.tomorrow().ok()?;
    }
    None
}

/// `HH:MM` (24 hours; `7:05` too).
pub fn parse_at(s: &str) -> Option<Time> {
    let (h, m) = s.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    if !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (i8, i8) = (h.parse().ok()?, m.parse().ok()?);
    Time::new(h, m, 0, 0).ok()
}

/// An IANA time zone from the system's tzdb (`UTC` always works, tzdb or not).
pub fn parse_tz(name: &str) -> Result<TimeZone, String> {
    match name.trim() {
        "UTC" | "Etc/UTC" | "Z" => Ok(TimeZone::UTC),
        n => TimeZone::get(n).map_err(|e| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> UnixSeconds {
        s.parse::<Timestamp>().unwrap().as_second() as f64
    }

    fn berlin(at: &str) -> Schedule {
        Schedule {
            when: When::DailyAt(parse_at(at).unwrap()),
            tz: parse_tz("Europe/Berlin").unwrap(),
        }
    }

    #[test]
    fn an_interval_counts_from_the_last_digest_or_from_a_clock_set_back() {
        let s = Schedule {
            when: When::Every(DAY),
            tz: TimeZone::UTC,
        };
        assert_eq!(s.due_in(None, false, 1000.0), None);
        assert_eq!(s.due_in(None, true, 1000.0), Some(Duration::ZERO));
        assert_eq!(
            s.due_in(Some(1000.0), true, 1000.0 + 3600.0),
            Some(DAY - Duration::from_secs(3600))
        );
        assert_eq!(
            s.due_in(Some(1000.0), true, 1000.0 + 2.0 * 86_400.0),
            Some(Duration::ZERO),
            "overdue: at once"
        );
        assert_eq!(
            s.due_in(Some(1_000_000.0), true, 1000.0),
            Some(DAY),
            "clock set back: one interval from now"
        );
        assert!(s.is_due(None, 5.0));
        assert!(!s.is_due(Some(1000.0), 1000.0 + 3600.0));
        assert!(s.is_due(Some(1000.0), 1000.0 + 86_400.0));
        assert_eq!(s.period(), DAY);
        assert_eq!(s.describe(), "every 1day");
    }

    #[test]
    fn at_a_wall_clock_time_in_a_zone() {
        let s = berlin("07:00");
        // Winter (CET, +01:00): 07:00 is 06:00Z.
        let after = s.next_after(utc("2025-01-10T05:00:00Z"));
        assert_eq!(after, utc("2025-01-10T06:00:00Z"), "later the same day");
        assert_eq!(
            s.next_after(utc("2025-01-10T06:00:00Z")),
            utc("2025-01-11T06:00:00Z"),
            "sent at 07:00 exactly: the next is tomorrow's"
        );
        // Sent late (a retry at 07:40): still tomorrow at 07:00, not 24 h after the retry.
        assert_eq!(
            s.next_after(utc("2025-01-10T06:40:00Z")),
            utc("2025-01-11T06:00:00Z")
        );
        // Summer (CEST, +02:00): 07:00 is 05:00Z.
        assert_eq!(
            s.next_after(utc("2025-07-01T12:00:00Z")),
            utc("2025-07-02T05:00:00Z")
        );
        // Agent down at 07:00, up at 09:00: the digest of yesterday's 07:00 + 1 is due at once.
        let last = utc("2025-01-09T06:00:05Z");
        let now = utc("2025-01-10T08:00:00Z");
        assert!(s.is_due(Some(last), now));
        assert_eq!(s.due_in(Some(last), true, now), Some(Duration::ZERO));
        assert_eq!(s.period(), DAY);
        assert_eq!(s.describe(), "daily at 07:00 Europe/Berlin");
    }

    #[test]
    fn daylight_saving_days_move_the_instant_not_the_local_time() {
        let s = berlin("07:00");
        // 2025-03-30: clocks go forward at 02:00 CET; that day has 23 hours.
        let before = utc("2025-03-29T06:00:00Z"); // 07:00 CET
        let next = s.next_after(before);
        assert_eq!(next, utc("2025-03-30T05:00:00Z"), "07:00 CEST");
        assert_eq!(next - before, 23.0 * 3600.0);
        // 2025-10-26: clocks go back at 03:00 CEST; that day has 25 hours.
        let before = utc("2025-10-25T05:00:00Z"); // 07:00 CEST
        let next = s.next_after(before);
        assert_eq!(next, utc("2025-10-26T06:00:00Z"), "07:00 CET");
        assert_eq!(next - before, 25.0 * 3600.0);

        // A time the spring-forward day skips (02:30): the digest goes out at 03:30 CEST.
        let s = berlin("02:30");
        assert_eq!(
            s.next_after(utc("2025-03-29T12:00:00Z")),
            utc("2025-03-30T01:30:00Z")
        );
        // A time the fall-back day shows twice: the first (CEST), and only once that day.
        let first = s.next_after(utc("2025-10-25T12:00:00Z"));
        assert_eq!(first, utc("2025-10-26T00:30:00Z"), "02:30 CEST");
        assert_eq!(
            s.next_after(first + 5.0),
            utc("2025-10-27T01:30:00Z"),
            "not again at 02:30 CET the same day"
        );
    }

    #[test]
    fn times_and_zones_parse_strictly() {
        assert_eq!(parse_at("07:00"), Time::new(7, 0, 0, 0).ok());
        assert_eq!(parse_at("7:05"), Time::new(7, 5, 0, 0).ok());
        assert_eq!(parse_at("23:59"), Time::new(23, 59, 0, 0).ok());
        for bad in [
            "24:00", "07:60", "0700", "7", "07:0", "-1:00", "07:00:00", "a7:00", "",
        ] {
            assert_eq!(parse_at(bad), None, "{bad:?}");
        }
        assert_eq!(parse_tz("UTC").unwrap(), TimeZone::UTC);
        assert!(parse_tz("Europe/Berlin").is_ok());
        assert!(parse_tz("Mars/Olympus_Mons").is_err());
    }
}
