//! An employee's e-mail address: the key by which every vendor account is found.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A syntactically valid e-mail address, stored as given and compared
/// case-insensitively (vendors treat addresses case-insensitively).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmployeeEmail(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct InvalidEmail(pub &'static str);

impl EmployeeEmail {
    pub fn parse(raw: &str) -> Result<Self, InvalidEmail> {
        let s = raw.trim();
        if s.is_empty() {
            return Err(InvalidEmail("must not be empty"));
        }
        if s.len() > 254 {
            return Err(InvalidEmail("must be at most 254 characters"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(InvalidEmail("must not contain spaces or control characters"));
        }
        if s.chars().any(crate::text::is_format) {
            return Err(InvalidEmail(
                "must not contain invisible formatting characters (zero-width or bidirectional marks)",
            ));
        }
        let (local, domain) = s.rsplit_once('@').ok_or(InvalidEmail("must contain a single @"))?;
        if local.is_empty() || local.len() > 64 || local.contains('@') {
            return Err(InvalidEmail("must have a local part of 1 to 64 characters before a single @"));
        }
        if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
            return Err(InvalidEmail("must not have leading, trailing or doubled dots in the local part"));
        }
        if !local.bytes().all(|b| b == b'.' || is_atext(b)) {
            return Err(InvalidEmail(
                "must have a local part of letters, digits, dots and ! # $ % & ' * + - / = ? ^ _ ` { | } ~ only (an RFC 5322 dot-atom)",
            ));
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2 {
            return Err(InvalidEmail("must have a domain with a dot, like example.com"));
        }
        for label in &labels {
            let ok = !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || !c.is_ascii());
            if !ok {
                return Err(InvalidEmail("must have a valid domain"));
            }
        }
        Ok(Self(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form used for matching and for ordering keys: lower-cased.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }

    /// True when `other` (as a vendor returned it) is this address.
    pub fn matches(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other.trim())
    }
}

/// RFC 5322 `atext`, what a dot-atom local part is made of: ASCII only, so a
/// quoted local part (`"a b"@example.com`) or a non-ASCII one is refused.
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b)
}

impl PartialEq for EmployeeEmail {
    fn eq(&self, other: &Self) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}
impl Eq for EmployeeEmail {}

impl TryFrom<String> for EmployeeEmail {
    type Error = InvalidEmail;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<EmployeeEmail> for String {
    fn from(value: EmployeeEmail) -> Self {
        value.0
    }
}

impl fmt::Display for EmployeeEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses() {
        for ok in [
            "ada@example.com",
            "a.b+tag@sub.example.co.uk",
            "X@Y.io",
            "o'brien@example.com",
            "!#$%&'*+-/=?^_`{|}~@example.com",
            "ada@b\u{fc}cher.example",
        ] {
            assert!(EmployeeEmail::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "a@@b.com",
            "a..b@example.com",
            "ada@-x.com",
        ] {
            assert!(EmployeeEmail::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_local_part_is_a_dot_atom_of_atext() {
        for bad in [
            r#""a"@example.com"#,
            r#""<>/@example.com"#,
            "<ada>@example.com",
            r"a\b@example.com",
            "a,b@example.com",
            "a(b)@example.com",
            "a[b]@example.com",
            "a:b@example.com",
            "a;b@example.com",
            "ad\u{e9}@example.com",
        ] {
            let e = EmployeeEmail::parse(bad).unwrap_err();
            assert!(e.0.contains("dot-atom"), "{bad}: {e}");
        }
    }

    #[test]
    fn invisible_format_characters_are_refused_anywhere() {
        for bad in [
            "ada\u{200b}@example.com",
            "ada@exa\u{202e}mple.com",
            "\u{feff}ada@example.com",
            "ada\u{2066}@example.com",
            "ada@example.com\u{200d}",
            "ada@example\u{ad}.com",
        ] {
            let e = EmployeeEmail::parse(bad).unwrap_err();
            assert!(e.0.contains("formatting"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn compares_case_insensitively() {
        let a = EmployeeEmail::parse("Ada@Example.com").unwrap();
        assert!(a.matches("ada@example.COM"));
        assert_eq!(a.normalized(), "ada@example.com");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in ".*") {
            let _ = EmployeeEmail::parse(&s);
        }

        #[test]
        fn valid_addresses_round_trip(local in "[a-z0-9]{1,20}", domain in "[a-z]{1,10}\\.[a-z]{2,5}") {
            let raw = format!("{local}@{domain}");
            let parsed = EmployeeEmail::parse(&raw).unwrap();
            proptest::prop_assert_eq!(parsed.as_str(), raw.as_str());
        }
    }
}
