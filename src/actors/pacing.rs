//! Reconnect pacing: exponential backoff with jitter, and a sliding-window rate limit.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Exponential backoff with full jitter above a floor: the n-th consecutive failure waits a
/// uniform random delay in `[min, min(max, min * 2^n)]`. Reset once data flows again.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max: max.max(min),
            failures: 0,
            rng: fastrand::Rng::new(),
        }
    }

    /// With a fixed seed, for tests.
    pub fn with_seed(min: Duration, max: Duration, seed: u64) -> Self {
        Self {
            rng: fastrand::Rng::with_seed(seed),
            ..Self::new(min, max)
        }
    }

    /// The ceiling of the next delay.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.failures.min(30)).unwrap_or(u32::MAX);
        self.min.saturating_mul(factor).min(self.max)
    }

    /// The delay before the next attempt; counts one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.failures = self.failures.saturating_add(1);
        let span = ceiling.saturating_sub(self.min).as_millis() as u64;
        self.min + Duration::from_millis(self.rng.u64(0..=span))
    }

    /// Consecutive failures since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Data flowed: start again from `min`.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// Longest wait after a 418 without `Retry-After`, however often the bans repeat (unless
/// `connection.ban_penalty` itself is longer).
pub const BAN_PENALTY_CAP: Duration = Duration::from_secs(3600);

/// The wait after the `repeats`-th consecutive 418 without `Retry-After` (0 for the first):
/// `base` doubled per repeat, at most [`BAN_PENALTY_CAP`] (or `base` if that is longer). Upbit:
/// "IP 차단 시간은 점진적으로 증가할 수 있습니다" (ban times may grow with repeats).
pub fn ban_penalty(base: Duration, repeats: u32) -> Duration {
    let factor = 1u32 << repeats.min(20);
    base.saturating_mul(factor).min(BAN_PENALTY_CAP.max(base))
}

/// At most `limit` events in any window of `window`: `reserve` answers when the next may happen
/// and books it.
#[derive(Debug, Clone)]
pub struct RateWindow {
    limit: usize,
    window: Duration,
    booked: VecDeque<Instant>,
}

impl RateWindow {
    pub fn new(limit: usize, window: Duration) -> Self {
        Self {
            limit: limit.max(1),
            window,
            booked: VecDeque::with_capacity(limit),
        }
    }

    /// Upbit's connection limit, 5 per second, counted here when an attempt starts and at
    /// Upbit when its upgrade request arrives: the window is 1.25 s so that handshakes whose
    /// latencies differ by up to a quarter second still land 5 to a second at Upbit.
    pub fn upbit_connections() -> Self {
        Self::new(5, Duration::from_millis(1250))
    }

    /// The earliest instant at or after `now` when an event is allowed, without booking it.
    pub fn earliest(&self, now: Instant) -> Instant {
        if self.booked.len() < self.limit {
            return now;
        }
        let oldest_that_counts = self.booked[self.booked.len() - self.limit];
        (oldest_that_counts + self.window).max(now)
    }

    /// Books an event at the earliest allowed instant and returns that instant.
    pub fn reserve(&mut self, now: Instant) -> Instant {
        while self.booked.front().is_some_and(|t| *t + self.window <= now) {
            self.booked.pop_front();
        }
        let at = self.earliest(now);
        self.booked.push_back(at);
        at
    }
}

/// Upbit's request limits (5 per second, 100 per minute), for subscription messages: each
/// (re)subscription is two requests (the subscription and LIST_SUBSCRIPTIONS), so at most 2
/// per 1.25 s (the same quarter-second margin as connection attempts, for sends that a busy
/// machine delays and bunches) and 48 per minute, shared by every connection of the process.
#[derive(Debug)]
pub struct RequestBudget {
    per_sec: RateWindow,
    per_min: RateWindow,
}

impl Default for RequestBudget {
    fn default() -> Self {
        Self {
            per_sec: RateWindow::new(2, Duration::from_millis(1250)),
            per_min: RateWindow::new(48, Duration::from_secs(60)),
        }
    }
}

impl RequestBudget {
    /// The earliest time a subscription may go out.
    pub fn earliest(&self, now: Instant) -> Instant {
        self.per_sec.earliest(now).max(self.per_min.earliest(now))
    }

    /// Books one subscription at `now`.
    pub fn reserve(&mut self, now: Instant) {
        self.per_sec.reserve(now);
        self.per_min.reserve(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_within_bounds_and_resets() {
        let (min, max) = (Duration::from_millis(100), Duration::from_millis(1000));
        for seed in 0..50 {
            let mut b = Backoff::with_seed(min, max, seed);
            let mut ceilings = Vec::new();
            for _ in 0..8 {
                let ceiling = b.ceiling();
                let d = b.next_delay();
                assert!(
                    d >= min && d <= ceiling,
                    "{d:?} outside [{min:?}, {ceiling:?}]"
                );
                ceilings.push(ceiling.as_millis());
            }
            assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000, 1000, 1000]);
            b.reset();
            assert_eq!((b.failures(), b.ceiling()), (0, min));
        }
    }

    #[test]
    fn backoff_jitter_spreads_delays() {
        let mut b = Backoff::with_seed(Duration::from_millis(100), Duration::from_secs(60), 7);
        for _ in 0..6 {
            b.next_delay();
        }
        let delays: std::collections::BTreeSet<Duration> = (0..20)
            .map(|_| {
                let mut c = b.clone();
                c.rng = fastrand::Rng::new();
                c.next_delay()
            })
            .collect();
        assert!(
            delays.len() > 10,
            "jitter should spread 20 draws: {delays:?}"
        );
    }

    #[test]
    fn backoff_survives_huge_failure_counts() {
        let mut b = Backoff::with_seed(Duration::from_secs(1), Duration::from_secs(60), 1);
        for _ in 0..1000 {
            assert!(b.next_delay() <= Duration::from_secs(60));
        }
    }

    #[test]
    fn ban_penalties_double_up_to_the_cap() {
        let base = Duration::from_secs(120);
        let waits: Vec<u64> = (0..8).map(|n| ban_penalty(base, n).as_secs()).collect();
        assert_eq!(waits, [120, 240, 480, 960, 1920, 3600, 3600, 3600]);
        assert_eq!(ban_penalty(base, u32::MAX), BAN_PENALTY_CAP);
        let long = Duration::from_secs(7200);
        assert_eq!(
            ban_penalty(long, 5),
            long,
            "a longer configured penalty is kept"
        );
    }

    #[test]
    fn rate_window_never_allows_more_than_limit_per_window() {
        let mut w = RateWindow::upbit_connections();
        let start = Instant::now();
        let booked: Vec<Instant> = (0..23).map(|_| w.reserve(start)).collect();
        for (i, at) in booked.iter().enumerate() {
            let in_window = booked
                .iter()
                .filter(|t| **t >= *at && **t < *at + Duration::from_secs(1))
                .count();
            assert!(
                in_window <= 5,
                "{in_window} events in the second after event {i}"
            );
        }
        assert_eq!(booked[4], start);
        assert_eq!(booked[5], start + Duration::from_millis(1250));
        assert_eq!(booked[22], start + Duration::from_secs(5));
    }

    #[test]
    fn rate_window_frees_slots_as_time_passes() {
        let mut w = RateWindow::new(2, Duration::from_millis(100));
        let t0 = Instant::now();
        assert_eq!(w.reserve(t0), t0);
        assert_eq!(w.reserve(t0), t0);
        let later = t0 + Duration::from_millis(150);
        assert_eq!(w.reserve(later), later);
    }
}
