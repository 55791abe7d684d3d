//! The `Idempotency-Key` a client sends with each event.

use std::fmt;

/// 1 to 255 visible ASCII characters (docs/contract.md §1).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InvalidIdempotencyKey {
    #[error("the Idempotency-Key header is required")]
    Missing,
    #[error("the Idempotency-Key header must be 1 to 255 visible ASCII characters")]
    Malformed,
}

impl IdempotencyKey {
    pub fn parse(raw: &[u8]) -> Result<Self, InvalidIdempotencyKey> {
        if raw.is_empty() || raw.len() > 255 || !raw.iter().all(|b| b.is_ascii_graphic()) {
            return Err(InvalidIdempotencyKey::Malformed);
        }
        // Every byte is visible ASCII, so this cannot fail.
        Ok(Self(String::from_utf8_lossy(raw).into_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_visible_ascii_up_to_255() {
        assert!(IdempotencyKey::parse(b"a").is_ok());
        assert!(IdempotencyKey::parse("k".repeat(255).as_bytes()).is_ok());
        assert!(IdempotencyKey::parse(b"evt-2026-11-22T09:00:00Z#1").is_ok());
    }

    #[test]
    fn rejects_empty_long_space_and_non_ascii() {
        assert!(IdempotencyKey::parse(b"").is_err());
        assert!(IdempotencyKey::parse("k".repeat(256).as_bytes()).is_err());
        assert!(IdempotencyKey::parse(b"has space").is_err());
        assert!(IdempotencyKey::parse("clé".as_bytes()).is_err());
        assert!(IdempotencyKey::parse(b"tab\t").is_err());
    }

    proptest::proptest! {
        #[test]
        fn accepted_keys_are_visible_ascii(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            if let Ok(key) = IdempotencyKey::parse(&bytes) {
                proptest::prop_assert!(key.as_str().len() <= 255);
                proptest::prop_assert!(key.as_str().bytes().all(|b| b.is_ascii_graphic()));
            }
        }
    }
}
