//! A request body from an identity provider, read strictly.
//!
//! - Repeated keys are refused (`invalidSyntax`): serde_json keeps the last
//!   value, other readers the first, so `{"active":true,"active":false}`
//!   would mean one thing here and another to whatever logged or checked it.
//!   SCIM's attribute names compare without case, so `userName` and
//!   `USERNAME` in one object are repeats too.
//! - A NUL, or another control character but tab, carriage return and line
//!   feed (an address's `formatted` may hold line breaks), is refused in any
//!   key or string value (`invalidValue`): PostgreSQL cannot store a NUL in
//!   text, and the others break logs.

use crate::ScimError;
use serde_json::Value;

/// The body as JSON, once it holds no repeated key and no forbidden control character.
pub fn parse(bytes: &[u8]) -> Result<Value, ScimError> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| ScimError::invalid_syntax(format!("the body is not valid JSON: {e}")))?;
    let repeated = lifecycle_domain::json::repeated_keys(bytes);
    if !repeated.is_empty() {
        return Err(ScimError::invalid_syntax(format!(
            "repeated keys: {}; send each attribute once",
            repeated.join(", ")
        )));
    }
    check(&value, &mut String::new())?;
    Ok(value)
}

/// A character no attribute value may hold: a control character but tab, CR and LF.
pub fn forbidden(c: char) -> bool {
    c.is_control() && !matches!(c, '\t' | '\r' | '\n')
}

fn check(v: &Value, path: &mut String) -> Result<(), ScimError> {
    match v {
        Value::String(s) => {
            if let Some(c) = s.chars().find(|c| forbidden(*c)) {
                return Err(control(path, c));
            }
        }
        Value::Array(items) => {
            for item in items {
                check(item, path)?;
            }
        }
        Value::Object(o) => {
            let mut seen = std::collections::HashSet::with_capacity(o.len());
            for (k, item) in o {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                if let Some(c) = k.chars().find(|c| c.is_control()) {
                    return Err(control(path, c));
                }
                if !seen.insert(k.to_lowercase()) {
                    return Err(ScimError::invalid_syntax(format!(
                        "the key {path:?} is repeated (attribute names compare without case); send each attribute once"
                    )));
                }
                check(item, path)?;
                path.truncate(len);
            }
        }
        _ => {}
    }
    Ok(())
}

fn control(path: &str, c: char) -> ScimError {
    ScimError::invalid_value(format!(
        "{} holds the control character U+{:04X}; control characters (but tab and line breaks) are not accepted",
        if path.is_empty() { "the body" } else { path },
        c as u32
    ))
}

/// A resource id from a URL: refused (`invalidValue`) when it holds a control
/// character or is longer than any id this server makes could be.
pub fn check_id(id: &str) -> Result<(), ScimError> {
    if id.len() > 255 || id.chars().any(char::is_control) {
        return Err(ScimError::invalid_value(
            "the id in the URL is not one this server made (no control characters, at most 255 bytes)",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ScimType;

    #[test]
    fn repeated_keys_are_refused_exact_or_by_case() {
        let e = parse(br#"{"userName":"a","active":true,"active":false}"#).unwrap_err();
        assert_eq!((e.status, e.scim_type), (400, Some(ScimType::InvalidSyntax)));
        assert!(e.detail.contains("active"), "{e}");
        let e = parse(br#"{"name":{"givenName":"A","givenName":"B"}}"#).unwrap_err();
        assert!(e.detail.contains("name.givenName"), "{e}");
        let e = parse(br#"{"userName":"a","USERNAME":"b"}"#).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax));
        // The same key in different objects is no repeat.
        assert!(parse(br#"{"emails":[{"value":"a"},{"value":"b"}],"value":1}"#).is_ok());
    }

    #[test]
    fn nul_and_control_characters_are_refused_anywhere() {
        for body in [
            r#"{"userName":"a\u0000b"}"#,
            r#"{"emails":[{"value":"a\u0001@example.com"}]}"#,
            r#"{"x\u0000":1}"#,
            r#"{"Operations":[{"op":"add","path":"members","value":[{"value":"\u0000"}]}]}"#,
        ] {
            let e = parse(body.as_bytes()).unwrap_err();
            assert_eq!((e.status, e.scim_type), (400, Some(ScimType::InvalidValue)), "{body}");
        }
        assert!(parse(br#"{"addresses":[{"formatted":"1 Main St\r\nSpringfield\tUS"}]}"#).is_ok());
        assert!(check_id("2819c223-7f76-453a-919d-413861904646").is_ok());
        assert_eq!(check_id("a\u{0}b").unwrap_err().status, 400);
        assert!(check_id(&"x".repeat(256)).is_err());
    }
}
