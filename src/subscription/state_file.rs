//! The state file: the subscription changed through the API, its revision and the orderbook
//! options, written atomically and read back at start so a restart keeps them.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::document::{parse_doc, to_doc, OrderbookDoc, SubscriptionDoc};
use crate::upbit::request::OrderbookOptions;
use crate::upbit::Subscription;

/// The state file's format version written by this build.
pub const STATE_VERSION: u32 = 2;

/// The state file's content. Version 1 had no revision; version 2 keeps the revision with the
/// subscription, so that a restart never hands out a revision again, and the orderbook options
/// once they were set through the API (absent before: the configured ones apply).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StateFile {
    version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revision: Option<u64>,
    subscription: SubscriptionDoc,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    orderbook: Option<OrderbookDoc>,
}

/// What a state file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedState {
    pub subscription: Subscription,
    /// The revision of that subscription: the service continues from here.
    pub revision: u64,
    /// Orderbook options set through the API; `None`: the configured ones.
    pub orderbook: Option<OrderbookOptions>,
}

/// Why a state file could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// It could not be read (permissions, I/O): left where it is.
    #[error("cannot read state file {path}: {reason}")]
    Unreadable { path: String, reason: String },
    /// Its content is not a state file this build reads: move it aside before replacing it.
    #[error("state file {path}: {reason}")]
    Invalid { path: String, reason: String },
}

/// Reads a state file; `Ok(None)` when it does not exist.
pub fn load_state(path: &Path) -> Result<Option<SavedState>, StateError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(StateError::Unreadable {
                path: path.display().to_string(),
                reason: e.to_string(),
            })
        }
    };
    let invalid = |reason: String| StateError::Invalid {
        path: path.display().to_string(),
        reason,
    };
    let state: StateFile =
        serde_json::from_str(&text).map_err(|e| invalid(format!("not valid: {e}")))?;
    let revision = match (state.version, state.revision) {
        // Version 1 was written on a change, so the subscription was at revision 1 or later.
        (1, None) => 1,
        (STATE_VERSION, Some(revision)) => revision,
        (1 | STATE_VERSION, _) => {
            return Err(invalid(format!(
                "version {} {} a revision",
                state.version,
                if state.version == 1 { "has" } else { "lacks" }
            )))
        }
        (other, _) => {
            return Err(invalid(format!(
                "unknown version {other}; this build reads versions 1 and {STATE_VERSION}"
            )))
        }
    };
    let subscription = parse_doc(&state.subscription).map_err(|e| invalid(e.to_string()))?;
    let orderbook = state
        .orderbook
        .map(|doc| doc.parse())
        .transpose()
        .map_err(|e| invalid(format!("orderbook: {e}")))?;
    Ok(Some(SavedState {
        subscription,
        revision,
        orderbook,
    }))
}

/// Moves an invalid state file aside (`<path>.corrupt-<unix seconds>`) so the next change does
/// not destroy it; returns where it went.
pub fn move_aside(path: &Path) -> std::io::Result<std::path::PathBuf> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".corrupt-{stamp}"));
    let aside = std::path::PathBuf::from(name);
    std::fs::rename(path, &aside)?;
    Ok(aside)
}

/// Writes the state file atomically: a temporary file beside it, synced, then renamed.
pub fn save_state(
    path: &Path,
    sub: &Subscription,
    revision: u64,
    orderbook: Option<&OrderbookOptions>,
) -> Result<(), String> {
    use std::io::Write;
    let state = StateFile {
        version: STATE_VERSION,
        revision: Some(revision),
        subscription: to_doc(sub),
        orderbook: orderbook.map(OrderbookDoc::of),
    };
    let json = serde_json::to_vec_pretty(&state).map_err(|e| e.to_string())?;
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&json)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| format!("cannot write state file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::subscription::document::tests::doc;

    #[test]
    fn state_file_round_trips_atomically() {
        let dir = std::env::temp_dir().join(format!("upbit-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.json");
        assert_eq!(load_state(&path), Ok(None));
        let sub = parse_doc(&doc(&[
            ("orderbook", &["KRW-BTC"]),
            ("ticker", &["KRW-ETH"]),
        ]))
        .unwrap();
        save_state(&path, &sub, 7, None).unwrap();
        let saved = SavedState {
            subscription: sub.clone(),
            revision: 7,
            orderbook: None,
        };
        assert_eq!(load_state(&path), Ok(Some(saved)));
        // Orderbook options set through the API travel with the subscription.
        let orderbook = OrderbookOptions {
            depth: Some(5),
            level: Some("10000".into()),
        };
        save_state(&path, &sub, 8, Some(&orderbook)).unwrap();
        let restored = load_state(&path).unwrap().unwrap();
        assert_eq!(
            (restored.revision, restored.orderbook),
            (8, Some(orderbook))
        );
        assert!(!path.with_extension("tmp").exists());
        let problem = |text: &str| {
            std::fs::write(&path, text).unwrap();
            match load_state(&path) {
                Err(StateError::Invalid { reason, .. }) => reason,
                other => panic!("{text}: {other:?}"),
            }
        };
        assert!(
            problem("{\"version\":1,\"subscription\":{\"ticker\":[\"bad\"]}}")
                .contains("malformed")
        );
        assert!(problem("garbage").contains("not valid"));
        assert!(
            problem("{\"version\":3,\"revision\":1,\"subscription\":{}}")
                .contains("unknown version 3; this build reads versions 1 and 2")
        );
        assert!(problem("{\"version\":2,\"subscription\":{}}").contains("lacks a revision"));
        assert!(problem(
            "{\"version\":2,\"revision\":1,\"subscription\":{},\"orderbook\":{\"depth\":7}}"
        )
        .contains("orderbook: invalid subscription: depth: 7 is not one of 1, 5, 15, 30"));
        // A version-1 file (no revision) was written by a change: revision 1 at least.
        std::fs::write(
            &path,
            "{\"version\":1,\"subscription\":{\"ticker\":[\"KRW-ETH\"]}}",
        )
        .unwrap();
        assert_eq!(load_state(&path).unwrap().unwrap().revision, 1);
        let aside = move_aside(&path).unwrap();
        assert!(!path.exists() && aside.exists());
        assert!(
            aside.to_str().unwrap().contains("state.json.corrupt-"),
            "{aside:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
