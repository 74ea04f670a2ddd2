//! The connection's observable state, shared between the connection actor (writer) and the
//! HTTP handlers (readers): what `/readyz` and `/api/v1/status` report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use serde::Serialize;
use utoipa::ToSchema;

use crate::clock::unix_seconds;
use crate::upbit::model::ListedSubscription;

/// Where the connection is in its life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    /// Waiting before the next attempt.
    Backoff,
    /// TCP, TLS and WebSocket handshake under way.
    Connecting,
    /// Handshake done, subscription sent.
    Subscribed,
    /// Connected with nothing to subscribe (empty subscription).
    Idle,
    /// Shutting down; no more attempts.
    Stopped,
}

/// A snapshot of the connection's state.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConnectionStatus {
    pub state: LinkState,
    /// Unix time (seconds) of the last state change.
    pub since: f64,
    /// The ticket of the current (or last) subscription request.
    #[schema(required = true)]
    pub ticket: Option<String>,
    /// Connection attempts since start.
    pub attempts: u64,
    /// Failed attempts or lost connections since data last flowed.
    pub consecutive_failures: u32,
    /// Delay before the next attempt, while in backoff.
    #[schema(required = true)]
    pub backoff_seconds: Option<f64>,
    /// The last connection error or disconnect reason, for humans.
    #[schema(required = true)]
    pub last_error: Option<String>,
    /// What Upbit answered to LIST_SUBSCRIPTIONS after the last (re)subscribe: `type`, `codes`
    /// and `level` when Upbit lists one, in DEFAULT names.
    #[schema(value_type = Option<Vec<Object>>, required = true)]
    pub acknowledged: Option<Vec<ListedSubscription>>,
}

/// Shared, cheap to clone.
#[derive(Clone)]
pub struct StatusBoard {
    inner: Arc<Inner>,
}

struct Inner {
    status: Mutex<ConnectionStatus>,
    epoch: Instant,
    /// Milliseconds since `epoch` of the last frame of any kind, 0 for never.
    last_frame_ms: AtomicU64,
}

impl Default for StatusBoard {
    fn default() -> Self {
        Self::new()
    }
}

impl StatusBoard {
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                status: Mutex::new(ConnectionStatus {
                    state: LinkState::Backoff,
                    since: unix_seconds(SystemTime::now()),
                    ticket: None,
                    attempts: 0,
                    consecutive_failures: 0,
                    backoff_seconds: None,
                    last_error: None,
                    acknowledged: None,
                }),
                epoch: Instant::now(),
                last_frame_ms: AtomicU64::new(0),
            }),
        }
    }

    /// A copy of the current status.
    pub fn snapshot(&self) -> ConnectionStatus {
        self.inner.status.lock().clone()
    }

    /// Applies a change and stamps `since` when the state changes.
    pub fn update(&self, change: impl FnOnce(&mut ConnectionStatus)) {
        let mut status = self.inner.status.lock();
        let before = status.state;
        change(&mut status);
        if status.state != before {
            status.since = unix_seconds(SystemTime::now());
        }
    }

    /// Records that a frame of any kind arrived (hot path: one atomic store).
    pub fn frame_seen(&self) {
        let ms = self.inner.epoch.elapsed().as_millis() as u64;
        self.inner.last_frame_ms.store(ms.max(1), Ordering::Relaxed);
    }

    /// Time since the last frame, `None` if none arrived yet.
    pub fn since_last_frame(&self) -> Option<Duration> {
        match self.inner.last_frame_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(
                self.inner
                    .epoch
                    .elapsed()
                    .saturating_sub(Duration::from_millis(ms)),
            ),
        }
    }

    /// Why the service is not ready, or `None` when it is: connected, subscribed, and a frame
    /// arrived within `freshness`.
    pub fn not_ready_reason(&self, freshness: Duration) -> Option<String> {
        let status = self.snapshot();
        match status.state {
            LinkState::Subscribed | LinkState::Idle => {}
            state => {
                let detail = status
                    .last_error
                    .map(|e| format!(" (last error: {e})"))
                    .unwrap_or_default();
                return Some(format!(
                    "not connected: {}{detail}",
                    serde_json::to_value(state).ok()?.as_str()?
                ));
            }
        }
        if status.state == LinkState::Idle {
            return None;
        }
        match self.since_last_frame() {
            Some(age) if age <= freshness => None,
            Some(age) => Some(format!(
                "no frame for {:.1}s (limit {:?})",
                age.as_secs_f64(),
                freshness
            )),
            None => Some("subscribed but no frame received yet".into()),
        }
    }
}

/// The status boards of every connection in use, by index; index 0 always exists.
#[derive(Clone)]
pub struct StatusBoards {
    boards: Arc<Mutex<Vec<StatusBoard>>>,
}

impl StatusBoards {
    /// Starts with `first` as connection 0.
    pub fn new(first: StatusBoard) -> Self {
        Self {
            boards: Arc::new(Mutex::new(vec![first])),
        }
    }

    /// The board of connection `index`, created (with any missing before it) when new.
    pub fn get_or_add(&self, index: usize) -> StatusBoard {
        let mut boards = self.boards.lock();
        while boards.len() <= index {
            boards.push(StatusBoard::new());
        }
        boards[index].clone()
    }

    /// The board of connection `index`, if it is in use.
    pub fn get(&self, index: usize) -> Option<StatusBoard> {
        self.boards.lock().get(index).cloned()
    }

    /// Forgets the boards from `len` on (connections no longer in use); keeps connection 0.
    pub fn truncate(&self, len: usize) {
        self.boards.lock().truncate(len.max(1));
    }

    pub fn all(&self) -> Vec<StatusBoard> {
        self.boards.lock().clone()
    }

    /// Why the service is not ready, if it is not: the first connection that is not.
    pub fn not_ready_reason(&self, freshness: Duration) -> Option<String> {
        let boards = self.all();
        let several = boards.len() > 1;
        boards.iter().enumerate().find_map(|(index, board)| {
            board
                .not_ready_reason(freshness)
                .map(|reason| match several {
                    true => format!("connection {index}: {reason}"),
                    false => reason,
                })
        })
    }
}
