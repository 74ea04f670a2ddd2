//! The subscription, free of HTTP and actors:
//!
//! - [`document`]: the JSON documents clients send (`PUT`/`PATCH` subscriptions, orderbook
//!   options) and their validation, every problem listed;
//! - [`plan`]: patterns resolved against the market list, codes spread over connections;
//! - [`state_file`]: what a restart reads back (subscription, revision, orderbook options).

pub mod document;
pub mod plan;
pub mod state_file;

pub use document::{
    parse_doc, to_doc, ChangeError, LevelDoc, OrderbookDoc, PatchDoc, SubscriptionChange,
    SubscriptionDoc, MAX_LEVEL,
};
pub use plan::{assign, bound, part, resolve, shard, Shard};
pub use state_file::{load_state, move_aside, save_state, SavedState, StateError, STATE_VERSION};
