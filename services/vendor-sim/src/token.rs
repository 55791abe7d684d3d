//! A credential, held (admin tokens, API client secrets, issued access tokens) or presented
//! (what a request carries). `Debug` and `Display` print `[redacted]`, so a stray `{:?}` of
//! the flags, a tenant or a credential never puts one in a log line.

use std::borrow::Borrow;
use std::fmt;

use serde::Deserialize;

/// A token, secret or password. Read the value only through [`Token::expose`]. Deserializes
/// from a plain string (`/_sim/seed` bodies).
#[derive(Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(transparent)]
pub struct Token(String);

impl Token {
    pub fn new(value: impl Into<String>) -> Self {
        Token(value.into())
    }

    /// The value itself: for a rate limiter's key, a token endpoint's answer, a header.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Compares with a presented credential in constant time, so response timing does not
    /// tell how much of a guess was right.
    pub fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), presented.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

// `From<String>` is also what clap parses a `--…-token` flag with.
impl From<String> for Token {
    fn from(value: String) -> Self {
        Token(value)
    }
}

impl From<&str> for Token {
    fn from(value: &str) -> Self {
        Token(value.to_owned())
    }
}

// Plain comparisons, for tests of the flags: a presented credential goes through `matches`.
impl PartialEq<str> for Token {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Token {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// Maps keyed by `Token` are looked up with the presented `&str` (same hash and equality).
impl Borrow<str> for Token {
    fn borrow(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_printed() {
        let t = Token::from("s3cret");
        assert_eq!(format!("{t:?} {t}"), "[redacted] [redacted]");
        assert_eq!(t.expose(), "s3cret");
    }

    #[test]
    fn matches_only_the_same_value() {
        let t = Token::from("abc");
        assert!(t.matches("abc"));
        assert!(!t.matches("abd"));
        assert!(!t.matches("ab"));
        assert!(!t.matches(""));
    }

    #[test]
    fn a_map_keyed_by_tokens_is_read_with_str() {
        let map: std::collections::HashMap<Token, u8> = [(Token::from("k"), 1)].into();
        assert_eq!(map.get("k"), Some(&1));
    }
}
