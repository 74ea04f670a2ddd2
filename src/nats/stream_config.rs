//! The JetStream stream the sink writes to: the configuration `[nats]` asks for, and what
//! differs when a stream of that name already exists (reported, never overwritten).

use std::time::Duration;

use async_nats::jetstream::stream::{Config, DiscardPolicy, RetentionPolicy, StorageType};

use super::subject;
use crate::settings::NatsSettings;

/// The stream as configured.
pub fn desired(settings: &NatsSettings) -> Config {
    Config {
        name: settings.stream.clone(),
        subjects: subject::stream_subjects(&settings.subject_prefix),
        retention: match settings.retention.as_str() {
            "interest" => RetentionPolicy::Interest,
            "workqueue" => RetentionPolicy::WorkQueue,
            _ => RetentionPolicy::Limits,
        },
        storage: match settings.storage.as_str() {
            "memory" => StorageType::Memory,
            _ => StorageType::File,
        },
        max_age: settings.max_age,
        max_bytes: if settings.max_bytes == 0 {
            -1
        } else {
            settings.max_bytes as i64
        },
        max_messages: -1,
        max_messages_per_subject: -1,
        max_consumers: -1,
        discard: DiscardPolicy::Old,
        duplicate_window: settings.duplicate_window,
        num_replicas: settings.replicas,
        ..Default::default()
    }
}

/// What an existing stream has that differs from `want`, one line each; empty when it fits.
pub fn differences(have: &Config, want: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let covered = want
        .subjects
        .iter()
        .all(|s| have.subjects.iter().any(|h| h == s));
    if !covered {
        out.push(format!(
            "subjects {:?} (want {:?})",
            have.subjects, want.subjects
        ));
    }
    let mut differ = |name: &str, have: String, want: String| {
        if have != want {
            out.push(format!("{name} {have} (want {want})"));
        }
    };
    differ(
        "retention",
        format!("{:?}", have.retention),
        format!("{:?}", want.retention),
    );
    differ(
        "storage",
        format!("{:?}", have.storage),
        format!("{:?}", want.storage),
    );
    differ("max_age", age(have.max_age), age(want.max_age));
    differ(
        "max_bytes",
        have.max_bytes.max(-1).to_string(),
        want.max_bytes.to_string(),
    );
    differ(
        "duplicate_window",
        age(have.duplicate_window),
        age(want.duplicate_window),
    );
    differ(
        "replicas",
        have.num_replicas.max(1).to_string(),
        want.num_replicas.to_string(),
    );
    out
}

fn age(d: Duration) -> String {
    match d.is_zero() {
        true => "unlimited".into(),
        false => humantime::format_duration(d).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Settings;

    #[test]
    fn the_configured_stream_fits_itself_and_each_difference_is_named() {
        let settings = Settings::from_overrides([
            ("nats.url", "nats://127.0.0.1:4222"),
            ("nats.max_age", "1h"),
            ("nats.duplicate_window", "30s"),
        ])
        .unwrap()
        .nats;
        let want = desired(&settings);
        assert_eq!(want.subjects, ["upbit.>"]);
        assert_eq!(want.max_bytes, -1, "0 is no limit");
        assert!(differences(&want, &want).is_empty());
        let mut have = want.clone();
        have.subjects = vec!["other.>".into()];
        have.duplicate_window = Duration::from_secs(120);
        have.retention = RetentionPolicy::WorkQueue;
        let diffs = differences(&have, &want);
        assert_eq!(diffs.len(), 3, "{diffs:?}");
        assert!(diffs[0].starts_with("subjects"));
        assert!(
            diffs.iter().any(|d| d == "duplicate_window 2m (want 30s)"),
            "{diffs:?}"
        );
    }
}
