//! Text from outside (a client, the exchange) made safe to show: bounded and escaped.
//!
//! Two spellings on purpose: [`escape`] for what goes back to a client or into an error label
//! (every non-ASCII and control character escaped, so nothing a client sent can forge a line or
//! spoof a character), [`truncate`] for log lines (printable Unicode kept, so Korean names read as
//! they are, control characters escaped, an ellipsis when cut).

/// `text` with control and non-ASCII characters escaped (`\n`, `\u{..}`), at most `max_chars`
/// characters of output.
pub fn escape(text: &str, max_chars: usize) -> String {
    text.chars()
        .flat_map(char::escape_default)
        .take(max_chars)
        .collect()
}

/// `text` cut at `max_chars` characters for a log line, control characters escaped, `…` when
/// cut.
pub fn truncate(text: &str, max_chars: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max_chars)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().count() > max_chars {
        out.push('…');
    }
    out
}

/// A printable, bounded preview of a payload for a log line.
pub fn preview(payload: &[u8], max_chars: usize) -> String {
    truncate(
        &String::from_utf8_lossy(&payload[..payload.len().min(max_chars * 4)]),
        max_chars,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_bounds_and_escapes_everything_unprintable() {
        assert_eq!(escape("a\nb", 10), "a\\nb");
        assert_eq!(escape("비트", 100), "\\u{be44}\\u{d2b8}");
        assert_eq!(escape(&"x".repeat(500), 300).len(), 300);
    }

    #[test]
    fn truncate_keeps_unicode_and_marks_the_cut() {
        assert_eq!(truncate("비트코인", 2), "비트…");
        assert_eq!(truncate("a\u{1b}b", 10), "a\\u{1b}b");
        assert_eq!(truncate("short", 10), "short");
    }

    #[test]
    fn preview_survives_invalid_utf8_and_cuts_inside_a_char() {
        assert_eq!(preview(&[0xff, b'a'], 10), "\u{fffd}a");
        let text = "가".repeat(10);
        assert_eq!(preview(text.as_bytes(), 3), "가가가…");
    }
}
