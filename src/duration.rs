//! Human durations for config and CLI, parsed by `humantime`: `500ms`, `30s`, `10m`, `2h`, and
//! also compounds and long units (`1h 30m`, `30sec`, `1.5s`). At most a year, so a deadline
//! computed from one can never overflow.

use std::time::Duration;

/// The longest duration accepted anywhere: a year.
pub const MAX: Duration = Duration::from_secs(365 * 24 * 3600);

/// Parses a duration such as `500ms`, `30s`, `10m`, `2h` or `1h 30m`; the error says why and
/// shows the accepted form.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let expected = "expected a number and a unit, e.g. \"500ms\", \"30s\", \"10m\", \"2h\"";
    match humantime::parse_duration(text) {
        Ok(duration) if duration <= MAX => Ok(duration),
        Ok(_) => Err(format!("invalid duration {text:?}: longer than a year")),
        Err(humantime::DurationError::NumberOverflow) => {
            Err(format!("invalid duration {text:?}: number too large"))
        }
        Err(reason) => Err(format!("invalid duration {text:?} ({reason}): {expected}")),
    }
}

/// Serde adapter for `Duration` fields read from text:
/// `#[serde(deserialize_with = "crate::duration::deserialize")]`.
///
/// Not `humantime_serde`: that crate drops humantime's reason ("expected a duration") and has no
/// upper bound, and it would be the same parser behind one more dependency.
pub fn deserialize<'de, D: serde::Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    let text = <String as serde::Deserialize>::deserialize(de)?;
    parse_duration(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_spelling() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration(" 2h "), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn accepts_humantimes_wider_forms() {
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("30 s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30sec"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2days"), Ok(Duration::from_secs(2 * 86400)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_bad_text_with_a_reason() {
        for bad in ["", "30", "s", "-1s", "30 parsecs", "forever", "1s2"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("e.g. \"500ms\""), "{bad:?}: {err}");
        }
        let err = parse_duration("99999999999999999999s").unwrap_err();
        assert!(err.contains("too large"), "{err}");
        assert!(parse_duration("9000h").unwrap_err().contains("year"));
        assert_eq!(parse_duration("365days"), Ok(MAX));
    }

    #[test]
    fn the_serde_adapter_names_the_bad_text() {
        #[derive(Debug, serde::Deserialize)]
        struct Timeouts {
            #[serde(deserialize_with = "deserialize")]
            idle: Duration,
        }
        let ok: Timeouts = serde_json::from_str(r#"{"idle":"1m"}"#).unwrap();
        assert_eq!(ok.idle, Duration::from_secs(60));
        let err = serde_json::from_str::<Timeouts>(r#"{"idle":"soon"}"#).unwrap_err();
        assert!(err.to_string().contains("\"soon\""), "{err}");
    }
}
