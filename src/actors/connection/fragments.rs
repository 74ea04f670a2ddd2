//! Reassembly of a message Upbit sent in fragments (WebSocket continuation frames), holding at
//! most `pipeline.max_frame_bytes`: a longer message is reported once, the moment it passes the
//! limit, and its remaining parts are skipped as they arrive. Plain state, no actor.
//!
//! Fragments out of order (a continuation without a start, a start inside a message) never get
//! here: the codec refuses them as a protocol error, which ends the link
//! (`upbit_disconnections_total{reason="error"}`).

use actix_http::ws::Item;
use bytes::{Bytes, BytesMut};

/// What one fragment completed.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Reassembled {
    /// Nothing yet: more parts to come, or a part of a message already reported as too large.
    Pending,
    /// The last part arrived: the whole message.
    Complete(Bytes),
    /// The message just passed the limit at `size` bytes; `held` is what was collected before
    /// this part (for the log preview). Its remaining parts are skipped.
    Oversized { size: usize, held: BytesMut },
}

/// The fragmented message under way on one link, if any.
#[derive(Debug, Default)]
pub(super) struct Reassembler {
    state: Option<State>,
}

#[derive(Debug)]
enum State {
    /// Its parts so far (at most the limit).
    Collecting(BytesMut),
    /// Reported already (too large): its remaining parts are skipped.
    Discarding,
}

impl Reassembler {
    /// Takes one fragment; `limit` is the largest message kept.
    pub(super) fn push(&mut self, item: Item, limit: usize) -> Reassembled {
        let (part, last) = match item {
            Item::FirstText(part) | Item::FirstBinary(part) => {
                self.state = Some(State::Collecting(BytesMut::new()));
                (part, false)
            }
            Item::Continue(part) => (part, false),
            Item::Last(part) => (part, true),
        };
        let (state, outcome) = match self.state.take() {
            Some(State::Collecting(mut buffer)) if buffer.len() + part.len() <= limit => {
                buffer.extend_from_slice(&part);
                (State::Collecting(buffer), Reassembled::Pending)
            }
            Some(State::Collecting(held)) => {
                let size = held.len() + part.len();
                (State::Discarding, Reassembled::Oversized { size, held })
            }
            Some(State::Discarding) | None => (State::Discarding, Reassembled::Pending),
        };
        match (state, last) {
            (State::Collecting(buffer), true) => Reassembled::Complete(buffer.freeze()),
            (_, true) => outcome,
            (state, false) => {
                self.state = Some(state);
                outcome
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(text: &str) -> Bytes {
        Bytes::copy_from_slice(text.as_bytes())
    }

    #[test]
    fn parts_within_the_limit_make_one_message() {
        let mut r = Reassembler::default();
        assert_eq!(
            r.push(Item::FirstText(part("{\"a\"")), 9),
            Reassembled::Pending
        );
        assert_eq!(r.push(Item::Continue(part(":")), 9), Reassembled::Pending);
        assert_eq!(
            r.push(Item::Last(part("12}")), 9),
            Reassembled::Complete(part("{\"a\":12}"))
        );
        assert_eq!(
            r.push(Item::FirstBinary(part("x")), 1),
            Reassembled::Pending,
            "a message exactly at the limit is kept"
        );
        assert_eq!(
            r.push(Item::Last(part("")), 1),
            Reassembled::Complete(part("x"))
        );
    }

    #[test]
    fn a_message_over_the_limit_is_reported_once_and_the_next_one_is_whole() {
        let mut r = Reassembler::default();
        assert_eq!(
            r.push(Item::FirstText(part("abc")), 4),
            Reassembled::Pending
        );
        assert_eq!(
            r.push(Item::Continue(part("de")), 4),
            Reassembled::Oversized {
                size: 5,
                held: BytesMut::from("abc")
            }
        );
        assert_eq!(r.push(Item::Continue(part("f")), 4), Reassembled::Pending);
        assert_eq!(r.push(Item::Last(part("g")), 4), Reassembled::Pending);
        assert_eq!(r.push(Item::FirstText(part("ok")), 4), Reassembled::Pending);
        assert_eq!(
            r.push(Item::Last(part("!")), 4),
            Reassembled::Complete(part("ok!"))
        );
    }

    #[test]
    fn a_last_part_that_passes_the_limit_is_reported_and_leaves_nothing_behind() {
        let mut r = Reassembler::default();
        r.push(Item::FirstText(part("ab")), 3);
        assert!(matches!(
            r.push(Item::Last(part("cd")), 3),
            Reassembled::Oversized { size: 4, .. }
        ));
        assert_eq!(r.push(Item::FirstText(part("a")), 3), Reassembled::Pending);
        assert_eq!(
            r.push(Item::Last(part("b")), 3),
            Reassembled::Complete(part("ab"))
        );
    }

    #[test]
    fn parts_without_a_start_are_skipped() {
        let mut r = Reassembler::default();
        assert_eq!(r.push(Item::Continue(part("x")), 10), Reassembled::Pending);
        assert_eq!(r.push(Item::Last(part("y")), 10), Reassembled::Pending);
    }
}
