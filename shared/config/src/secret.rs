//! A secret value: a token, a password, a URL with credentials in it.

use secrecy::{ExposeSecret, SecretString};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use subtle::ConstantTimeEq;

/// Holds a credential. `Debug` and `Display` print `[redacted]`; the value is
/// reachable only through [`Secret::expose`], so a stray `{:?}` in a log line
/// cannot leak it. Deserializes from a string, or from `{ file = "PATH" }`
/// (the file's content, trailing newline removed: the Docker/Kubernetes
/// secrets convention).
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(SecretString::from(value.into()))
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Compares with a presented credential in constant time, so response
    /// timing does not reveal how much of a guess was right.
    pub fn matches(&self, presented: &[u8]) -> bool {
        let ours = self.expose().as_bytes();
        // Length is not secret-dependent in a useful way for random tokens, but
        // compare over equal-length buffers anyway to avoid an early exit.
        let len_eq = ours.len().ct_eq(&presented.len());
        let mut padded = vec![0u8; ours.len()];
        let n = presented.len().min(ours.len());
        padded[..n].copy_from_slice(&presented[..n]);
        (len_eq & ours.ct_eq(&padded)).into()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecretVisitor;
        impl<'de> Visitor<'de> for SecretVisitor {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, or a table { file = \"/path/to/secret\" }")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret::new(v))
            }
            // Environment values that look like numbers arrive as numbers.
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Secret, E> {
                Ok(Secret::new(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Secret, E> {
                Ok(Secret::new(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Secret, A::Error> {
                let mut file: Option<String> = None;
                while let Some(key) = map.next_key::<String>()? {
                    if key == "file" {
                        file = Some(map.next_value()?);
                    } else {
                        return Err(de::Error::unknown_field(&key, &["file"]));
                    }
                }
                let path = file.ok_or_else(|| de::Error::missing_field("file"))?;
                let content = std::fs::read_to_string(&path)
                    // The path is not secret; the content is never echoed.
                    .map_err(|e| de::Error::custom(format!("cannot read secret file {path}: {e}")))?;
                let value = content.trim_end_matches(['\n', '\r']);
                if value.is_empty() {
                    return Err(de::Error::custom(format!("secret file {path} is empty")));
                }
                Ok(Secret::new(value))
            }
        }
        deserializer.deserialize_any(SecretVisitor)
    }
}

/// A list of secrets: a sequence, a comma-separated string (handy in one
/// environment variable), or `{ file = "PATH" }` holding one per line.
pub(crate) fn secret_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Secret>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<Secret>),
        Text(String),
        File { file: String },
    }
    let split =
        |s: &str, sep: char| s.split(sep).map(str::trim).filter(|t| !t.is_empty()).map(Secret::new).collect::<Vec<_>>();
    Ok(match Raw::deserialize(deserializer)? {
        Raw::List(list) => list,
        Raw::Text(s) => split(&s, ','),
        Raw::File { file } => {
            let content = std::fs::read_to_string(&file)
                .map_err(|e| de::Error::custom(format!("cannot read secret file {file}: {e}")))?;
            split(&content, '\n')
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_come_as_sequences_strings_or_files() {
        #[derive(Deserialize)]
        struct T {
            #[serde(deserialize_with = "secret_list")]
            v: Vec<Secret>,
        }
        let t: T = serde_json::from_value(serde_json::json!({"v": ["a", "b"]})).unwrap();
        assert_eq!(t.v.len(), 2);
        let t: T = serde_json::from_value(serde_json::json!({"v": "a, b,c"})).unwrap();
        assert_eq!(t.v.iter().map(|s| s.expose()).collect::<Vec<_>>(), ["a", "b", "c"]);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t"), "x\ny\n").unwrap();
        let t: T = serde_json::from_value(serde_json::json!({"v": {"file": dir.path().join("t")}})).unwrap();
        assert_eq!(t.v.len(), 2);
    }

    #[test]
    fn never_prints_its_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn matches_only_the_exact_value() {
        let s = Secret::new("token-abc");
        assert!(s.matches(b"token-abc"));
        assert!(!s.matches(b"token-abd"));
        assert!(!s.matches(b"token-ab"));
        assert!(!s.matches(b"token-abcd"));
        assert!(!s.matches(b""));
    }

    #[test]
    fn reads_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tok");
        std::fs::write(&path, "from-file\n").unwrap();
        let json = serde_json::json!({ "file": path });
        let s: Secret = serde_json::from_value(json).unwrap();
        assert_eq!(s.expose(), "from-file");
    }
}
