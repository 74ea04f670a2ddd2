//! The connection gate: Upbit's limit on WebSocket upgrades per second, answered with 429 and
//! `Retry-After`, and the ban (418) that repeated 429s earn, doubling with each repeat.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::SimulatorConfig;

/// Recent upgrade attempts and refusals, and the ban in force.
#[derive(Debug, Default)]
pub(super) struct Gate {
    /// Attempts within the last second.
    attempts: VecDeque<Instant>,
    /// 429s within the last minute.
    rejections: VecDeque<Instant>,
    ban_until: Option<Instant>,
    /// Bans so far: each one lasts twice as long as the one before.
    bans: u32,
}

impl Gate {
    /// Counts an upgrade attempt at `now`: `None` lets it through, `Some((status, retry_after))`
    /// refuses it (`Retry-After` in seconds). A zero `connect_limit_per_sec` lets everything in.
    pub(super) fn admit(
        &mut self,
        config: &SimulatorConfig,
        now: Instant,
    ) -> Option<(u16, Option<u64>)> {
        if config.connect_limit_per_sec == 0 {
            return None;
        }
        if let Some(until) = self.ban_until.filter(|u| now < *u) {
            return Some((418, Some(until.duration_since(now).as_secs().max(1))));
        }
        while self
            .attempts
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            self.attempts.pop_front();
        }
        while self
            .rejections
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            self.rejections.pop_front();
        }
        self.attempts.push_back(now);
        if self.attempts.len() <= config.connect_limit_per_sec as usize {
            return None;
        }
        self.rejections.push_back(now);
        if self.rejections.len() >= config.ban_after_rejections.max(1) as usize {
            let ban = config.ban_duration.saturating_mul(1 << self.bans.min(10));
            self.bans += 1;
            self.ban_until = Some(now + ban);
            self.rejections.clear();
            return Some((418, Some(ban.as_secs().max(1))));
        }
        Some((429, Some(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> SimulatorConfig {
        SimulatorConfig {
            connect_limit_per_sec: 2,
            ban_after_rejections: 2,
            ban_duration: Duration::from_secs(10),
            ..SimulatorConfig::default()
        }
    }

    #[test]
    fn attempts_over_the_limit_get_429_then_a_ban_that_doubles() {
        let config = config();
        let mut gate = Gate::default();
        let start = Instant::now();
        assert_eq!(gate.admit(&config, start), None);
        assert_eq!(gate.admit(&config, start), None);
        assert_eq!(gate.admit(&config, start), Some((429, Some(1))));
        assert_eq!(gate.admit(&config, start), Some((418, Some(10))));
        assert_eq!(
            gate.admit(&config, start + Duration::from_secs(4)),
            Some((418, Some(6)))
        );
        // After the ban, a new second: let in again; the next ban lasts twice as long.
        let later = start + Duration::from_secs(11);
        assert_eq!(gate.admit(&config, later), None);
        assert_eq!(gate.admit(&config, later), None);
        assert_eq!(gate.admit(&config, later), Some((429, Some(1))));
        assert_eq!(gate.admit(&config, later), Some((418, Some(20))));
    }

    #[test]
    fn the_window_is_one_second_and_a_zero_limit_disables_the_gate() {
        let config = config();
        let mut gate = Gate::default();
        let start = Instant::now();
        for second in 0..5 {
            let now = start + Duration::from_secs(second);
            assert_eq!(gate.admit(&config, now), None);
            assert_eq!(gate.admit(&config, now), None);
        }
        let open = SimulatorConfig {
            connect_limit_per_sec: 0,
            ..config
        };
        assert!((0..100).all(|_| gate.admit(&open, start).is_none()));
    }
}
