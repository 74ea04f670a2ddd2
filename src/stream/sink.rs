//! A destination beside the hub that receives every market message and link event the pipeline
//! publishes, in order: the seam for sinks that live in a higher layer (`crate::nats`).
//!
//! A sink must never make the pipeline wait: `publish` takes what it needs (the events are
//! cheap to clone) and returns; buffering, sending and counting losses are its own business.

use super::event::Event;

/// Receives every published batch; with a sink attached, every market message is encoded and
/// carries its deduplication id ([`Event::id`]).
pub trait EventSink: Send + Sync {
    /// A batch of market messages, or one link event, in pipeline order. Must not block.
    fn publish(&self, events: &[Event]);
}
