//! Metrics and operational events.
//!
//! - [`metrics`]: every metric, registered in one place;
//! - [`family`]: the per-market label families, which write their own text;
//! - [`exposition`]: the text behind `/metrics`;
//! - [`events`]: lifecycle events that log and count together.

pub mod events;
pub mod exposition;
pub mod family;
pub mod metrics;

pub use exposition::Exposition;
pub use metrics::Metrics;

use std::time::{Duration, Instant};

/// Lets one log line through per period and counts what it held back, so a flood of bad frames
/// cannot flood the log (the metrics still count every one).
#[derive(Debug)]
pub struct LogThrottle {
    period: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogThrottle {
    pub fn new(period: Duration) -> Self {
        Self {
            period,
            last: None,
            suppressed: 0,
        }
    }

    /// True if this occurrence should be logged; the caller may report `take_suppressed()`.
    pub fn allow(&mut self) -> bool {
        let now = Instant::now();
        if self
            .last
            .is_none_or(|t| now.duration_since(t) >= self.period)
        {
            self.last = Some(now);
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// How many occurrences were held back since the last call.
    pub fn take_suppressed(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed)
    }
}
