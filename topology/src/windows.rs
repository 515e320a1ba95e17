//! The window specifications of windowed operations (Kafka Streams' `TimeWindows`,
//! `SessionWindows`, `SlidingWindows`, `JoinWindows`): options the DSL takes and the window
//! aggregation and join nodes compute with.

use std::time::Duration;

use crate::state::window::Window;

/// Fixed-size windows advancing by `advance` (tumbling when `advance == size`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeWindows {
    /// Window length in ms (at least 1).
    pub size_ms: i64,
    /// Distance between window starts in ms, between 1 and `size_ms`; equal to it for tumbling
    /// windows.
    pub advance_ms: i64,
    /// How long after a window's end (in stream time, ms) records for it are still accepted; later
    /// ones are dropped as late and the window is closed.
    pub grace_ms: i64,
}

fn millis(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

impl TimeWindows {
    /// Tumbling windows of `size` with `grace` for late records
    /// (`TimeWindows.ofSizeAndGrace`).
    pub fn tumbling(size: Duration, grace: Duration) -> Self {
        TimeWindows {
            size_ms: millis(size).max(1),
            advance_ms: millis(size).max(1),
            grace_ms: millis(grace),
        }
    }

    /// Hopping windows: `size` long, one starting every `advance`.
    pub fn hopping(size: Duration, advance: Duration, grace: Duration) -> Self {
        TimeWindows {
            size_ms: millis(size).max(1),
            advance_ms: millis(advance).clamp(1, millis(size).max(1)),
            grace_ms: millis(grace),
        }
    }

    /// How long the store keeps windows: size plus grace, as Kafka Streams keeps them.
    pub fn retention_ms(&self) -> i64 {
        self.size_ms.saturating_add(self.grace_ms)
    }

    /// The windows containing `timestamp`, earliest first (`TimeWindows.windowsFor`).
    pub fn windows_for(&self, timestamp: i64) -> impl Iterator<Item = Window> + '_ {
        let first =
            (timestamp - self.size_ms + self.advance_ms).max(0) / self.advance_ms * self.advance_ms;
        (0..)
            .map(move |i| first + i * self.advance_ms)
            .take_while(move |&start| start <= timestamp)
            .map(|start| Window {
                start,
                end: start + self.size_ms,
            })
    }
}

/// Sessions of activity separated by at least `gap` (`SessionWindows`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionWindows {
    /// Inactivity gap in ms: records of a key closer in time than this belong to one session.
    pub gap_ms: i64,
    /// How long after a session's end (in stream time, ms) records may still extend or merge it.
    pub grace_ms: i64,
}

impl SessionWindows {
    /// Sessions separated by `gap` of inactivity, with `grace` for late records (Kafka Streams'
    /// `SessionWindows.ofInactivityGapAndGrace`); kept at ms resolution.
    pub fn new(gap: Duration, grace: Duration) -> Self {
        SessionWindows {
            gap_ms: gap.as_millis() as i64,
            grace_ms: grace.as_millis() as i64,
        }
    }

    /// How long the session store keeps sessions: gap plus grace, as Kafka Streams keeps them.
    pub fn retention_ms(&self) -> i64 {
        self.gap_ms + self.grace_ms
    }
}

/// Windows spanning at most `time_difference` between records (`SlidingWindows`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlidingWindows {
    /// Largest time difference in ms between two records of one window; each window is this long.
    pub time_difference_ms: i64,
    /// How long after a window's end (in stream time, ms) records for it are still accepted.
    pub grace_ms: i64,
}

impl SlidingWindows {
    /// Sliding windows of `time_difference`, with `grace` for late records (Kafka Streams'
    /// `SlidingWindows.ofTimeDifferenceAndGrace`); kept at ms resolution.
    pub fn new(time_difference: Duration, grace: Duration) -> Self {
        SlidingWindows {
            time_difference_ms: time_difference.as_millis() as i64,
            grace_ms: grace.as_millis() as i64,
        }
    }

    /// Windows reach back two time differences from a record; the store keeps them that long
    /// plus grace.
    pub fn retention_ms(&self) -> i64 {
        2 * self.time_difference_ms + self.grace_ms
    }
}

/// How far apart in time two records may be to join (Kafka Streams' `JoinWindows`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JoinWindows {
    /// How much earlier than a left record a right record may be.
    pub before_ms: i64,
    /// How much later than a left record a right record may be.
    pub after_ms: i64,
    /// How far behind stream time (ms) a record may arrive and still join; after that the window
    /// is closed and, in outer joins, unjoined records are emitted.
    pub grace_ms: i64,
}

impl JoinWindows {
    /// Records join when their timestamps differ by at most `difference`; records arriving
    /// up to `grace` behind stream time still join (`JoinWindows.ofTimeDifferenceAndGrace`).
    pub fn of_time_difference_and_grace(difference: Duration, grace: Duration) -> Self {
        JoinWindows {
            before_ms: millis(difference),
            after_ms: millis(difference),
            grace_ms: millis(grace),
        }
    }

    /// How long each side's store keeps a record: the window's size plus grace.
    pub fn retention_ms(&self) -> i64 {
        self.before_ms
            .saturating_add(self.after_ms)
            .saturating_add(self.grace_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hopping_windows_are_those_containing_the_timestamp() {
        let w = TimeWindows::hopping(
            Duration::from_millis(10),
            Duration::from_millis(5),
            Duration::ZERO,
        );
        let starts: Vec<i64> = w.windows_for(12).map(|w| w.start).collect();
        assert_eq!(starts, vec![5, 10]);
        let t = TimeWindows::tumbling(Duration::from_millis(10), Duration::ZERO);
        assert_eq!(
            t.windows_for(19).collect::<Vec<_>>(),
            vec![Window { start: 10, end: 20 }]
        );
        assert_eq!(t.windows_for(3).next(), Some(Window { start: 0, end: 10 }));
    }
}
