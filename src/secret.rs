//! The control bearer token: never printed, compared in constant time.

use std::fmt;

use subtle::ConstantTimeEq;

/// A secret that never prints: `Debug` shows `Secret(***)` and there is no `Display`.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The value, for the one place that must hand it on (a NATS connection's credentials).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares in time independent of where the inputs differ (`subtle`); only the lengths,
    /// which a bearer token does not need to hide, decide early.
    pub fn matches(&self, candidate: &str) -> bool {
        self.0.as_bytes().ct_eq(candidate.as_bytes()).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(value: &str) -> Secret {
        Secret::new(value.to_owned())
    }

    #[test]
    fn the_same_token_matches() {
        assert!(secret("0123456789abcdef").matches("0123456789abcdef"));
        assert!(secret("").matches(""));
    }

    #[test]
    fn a_different_token_does_not_match() {
        assert!(!secret("0123456789abcdef").matches("0123456789abcdeF"));
        assert!(!secret("0123456789abcdef").matches("x123456789abcdef"));
    }

    #[test]
    fn a_token_of_another_length_does_not_match() {
        assert!(!secret("secret").matches("secret!"));
        assert!(!secret("secret").matches("secre"));
        assert!(!secret("secret").matches(""));
        assert!(!secret("").matches("x"));
    }

    #[test]
    fn debug_never_shows_the_value() {
        let shown = format!("{:?} {:#?}", secret("hunter2"), Some(secret("hunter2")));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.starts_with("Secret(***)"), "{shown}");
    }
}
