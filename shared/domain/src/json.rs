//! JSON bodies from outside: their repeated keys, and their canonical hash.
//!
//! ## Repeated keys
//!
//! RFC 8259 leaves an object whose names repeat to the reader, and readers
//! disagree: serde_json keeps the last value, others the first. So
//! `{"type":"joiner","type":"leaver"}` would be a leaver here and a joiner to
//! whatever logged or checked the body on its way, which is how a payload
//! slips past a filter. The intake and the webhook receiver refuse such a
//! body instead, naming each repeated key. [`repeated_keys`] walks a body
//! that serde_json has already accepted (so it meets no syntax error and no
//! deeper nesting than serde_json allows) and reports each repeated key by
//! its dotted path, as [`FieldError`]s name fields.
//!
//! ## The canonical hash
//!
//! [`payload_hash`] hashes a body's canonical form, so that the same payload
//! sent twice is known as one whatever its formatting.

use crate::field::FieldError;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

/// At most this many repeated keys are reported: enough to fix a payload,
/// and a 64 KiB body of repeats does not become a 64 KiB answer.
pub const MAX_REPORTED: usize = 10;

/// The dotted paths (`type`, `employee.email`, `apps.jira.groups[0].x`) of
/// the keys that appear more than once in their object, in document order,
/// each once, at most [`MAX_REPORTED`]. Empty for a body without repeats,
/// and for bytes that are not JSON (the caller's own decoding reports those).
pub fn repeated_keys(bytes: &[u8]) -> Vec<String> {
    let found = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_slice(bytes);
    // Not JSON: nothing to add to what the caller's decoding says.
    let _ = Walk { path: String::new(), found: &found }.deserialize(&mut de);
    found.into_inner()
}

/// The repeated keys as field errors, each saying what is wrong.
pub fn repeated_key_errors(bytes: &[u8]) -> Vec<FieldError> {
    repeated_keys(bytes)
        .into_iter()
        .map(|path| FieldError::new(&path, "appears more than once in its object; send each key once"))
        .collect()
}

/// Visits one value at `path`, recording repeated keys in `found`.
struct Walk<'a> {
    path: String,
    found: &'a RefCell<Vec<String>>,
}

impl Walk<'_> {
    fn child(&self, path: String) -> Self {
        Walk { path, found: self.found }
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0usize;
        while seq.next_element_seed(self.child(format!("{}[{i}]", self.path)))?.is_some() {
            i += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = if self.path.is_empty() { key.clone() } else { format!("{}.{key}", self.path) };
            if !seen.insert(key) {
                let mut found = self.found.borrow_mut();
                if found.len() < MAX_REPORTED && !found.contains(&path) {
                    found.push(path.clone());
                }
            }
            map.next_value_seed(self.child(path))?;
        }
        Ok(())
    }
}

/// SHA-256 of the body's canonical JSON (object keys sorted, no whitespace):
/// the same payload sent twice hashes the same whatever its formatting.
pub fn payload_hash(value: &serde_json::Value) -> String {
    let mut canonical = String::new();
    write_canonical(value, &mut canonical);
    hex::encode(Sha256::digest(canonical.as_bytes()))
}

fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_ignores_key_order_and_whitespace() {
        let a: serde_json::Value = serde_json::from_str(r#"{"a":1,"b":{"c":[1,2],"d":"x"}}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{ "b": { "d": "x", "c": [1, 2] }, "a": 1 }"#).unwrap();
        assert_eq!(payload_hash(&a), payload_hash(&b));
        let c: serde_json::Value = serde_json::from_str(r#"{"a":2,"b":{"c":[1,2],"d":"x"}}"#).unwrap();
        assert_ne!(payload_hash(&a), payload_hash(&c));
    }

    #[test]
    fn names_each_repeated_key_by_its_path_once() {
        assert_eq!(repeated_keys(br#"{"type":"joiner","type":"leaver"}"#), ["type"]);
        assert_eq!(
            repeated_keys(br#"{"employee":{"email":"a@x.io","email":"b@x.io","email":"c@x.io"},"apps":{"jira":{"groups":[{"x":1,"x":2}]}}}"#),
            ["employee.email", "apps.jira.groups[0].x"]
        );
        // The same name in different objects is not a repeat.
        assert!(repeated_keys(br#"{"a":{"id":1},"b":{"id":2},"c":[{"id":3},{"id":4}]}"#).is_empty());
        // Escaped and plain spellings of one key are the same key.
        assert_eq!(repeated_keys(br#"{"type":1,"\u0074ype":2}"#), ["type"]);
    }

    #[test]
    fn bounded_and_quiet_on_what_is_not_json() {
        let many: String = (0..100).map(|i| format!(r#"{{"k{i}":1,"k{i}":2}}"#)).collect::<Vec<_>>().join(",");
        assert_eq!(repeated_keys(format!("[{many}]").as_bytes()).len(), MAX_REPORTED);
        assert!(repeated_keys(b"not json").is_empty());
        assert!(repeated_keys(b"[1, 2, {\"a\": true}]").is_empty());
        assert_eq!(repeated_key_errors(br#"{"type":1,"type":2}"#)[0].pointer, "#/type");
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_a_count_of_keys(keys in proptest::collection::vec("[a-c]", 0..6)) {
            let body = format!("{{{}}}", keys.iter().map(|k| format!("\"{k}\":0")).collect::<Vec<_>>().join(","));
            let distinct: HashSet<&String> = keys.iter().collect();
            proptest::prop_assert_eq!(repeated_keys(body.as_bytes()).is_empty(), distinct.len() == keys.len());
        }
    }
}
