//! Timer windows: time is cut into fixed windows aligned to the Unix epoch, so every replica
//! computes the same window start and therefore the same virtual event id for a tick.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

/// Start of the window of length `period` that contains `at`.
///
/// Windows are aligned to the Unix epoch so replicas agree without talking to each other.
pub fn window_start(at: DateTime<Utc>, period: Duration) -> DateTime<Utc> {
    let p = period_millis(period);
    let ms = at.timestamp_millis();
    let start = ms - ms.rem_euclid(p);
    Utc.timestamp_millis_opt(start).single().unwrap_or(at)
}

/// Start of the window after the one containing `at`.
pub fn next_window_start(at: DateTime<Utc>, period: Duration) -> DateTime<Utc> {
    let p = period_millis(period);
    let start = window_start(at, period)
        .timestamp_millis()
        .saturating_add(p);
    Utc.timestamp_millis_opt(start)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn period_millis(period: Duration) -> i64 {
    i64::try_from(period.as_millis()).unwrap_or(i64::MAX).max(1)
}

/// One firing of a timer: the virtual envelope handed to a timer handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerTick {
    /// Name given when the timer was registered.
    pub timer: String,
    /// Start of the window this tick covers (inclusive).
    pub window_start: DateTime<Utc>,
    /// End of the window (exclusive).
    pub window_end: DateTime<Utc>,
    /// Derived from (worker, timer, window start): the same on every replica.
    pub event_id: uuid::Uuid,
    /// A fresh W3C trace id for the tick (timers start traces).
    pub trace_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn windows_align_to_the_epoch() {
        let p = Duration::from_secs(30);
        assert_eq!(
            window_start(t("2026-01-01T00:00:29.999Z"), p),
            t("2026-01-01T00:00:00Z")
        );
        assert_eq!(
            window_start(t("2026-01-01T00:00:30Z"), p),
            t("2026-01-01T00:00:30Z")
        );
        assert_eq!(
            next_window_start(t("2026-01-01T00:00:30Z"), p),
            t("2026-01-01T00:01:00Z")
        );
        let five_min = Duration::from_secs(300);
        assert_eq!(
            window_start(t("2026-01-01T10:07:12Z"), five_min),
            t("2026-01-01T10:05:00Z")
        );
    }

    #[test]
    fn every_instant_of_a_window_maps_to_its_start() {
        let p = Duration::from_secs(60);
        let start = t("2026-03-04T05:06:00Z");
        for ms in [0, 1, 59_999] {
            let at = start + chrono::Duration::milliseconds(ms);
            assert_eq!(window_start(at, p), start);
            assert_eq!(
                next_window_start(at, p),
                start + chrono::Duration::seconds(60)
            );
        }
    }

    #[test]
    fn zero_period_does_not_panic() {
        let at = t("2026-01-01T00:00:00.5Z");
        assert_eq!(window_start(at, Duration::ZERO), at);
    }
}
