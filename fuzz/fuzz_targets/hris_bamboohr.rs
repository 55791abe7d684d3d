//! BambooHR's receiver: `X-BambooHR-Signature` over the raw body and `X-BambooHR-Timestamp`,
//! then the event-based webhook parser (JSON or form-encoded).
//!
//! Input: the first line is the `X-BambooHR-Signature` header value, the second the
//! `X-BambooHR-Timestamp` value (each absent when its line is empty), the rest the body. The body
//! is verified twice: with the fuzzed headers, and signed with the tenant's key at the current
//! time (so the parser is reached with every body).
//! Asserts: no panic; fuzzed headers verify only with the body's real signature for that
//! timestamp, and only within the tolerance; a parsed delivery has a numeric employee id, a
//! visible company id and a bounded printable key.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use lifecycle_hris::bamboohr;
use lifecycle_hris::{SignatureError, Source};

const KEY: &str = "fuzz-webhook-private-key";

fn line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &data[..0]),
    }
}

fuzz_target!(|data: &[u8]| {
    let source = bamboohr::source(
        &serde_json::json!({ "tenants": [{ "name": "t", "company_id": "12345", "webhook_secret": KEY,
            "api_url": "https://api.bamboohr.com/api/gateway.php/fuzz", "api_key": "k" }] }),
        Duration::from_secs(1),
    )
    .expect("valid config");
    let (signature, rest) = line(data);
    let (timestamp, body) = line(rest);
    let now = chrono::Utc::now();

    let mut headers = http::HeaderMap::new();
    for (name, value) in [(bamboohr::SIGNATURE_HEADER, signature), (bamboohr::TIMESTAMP_HEADER, timestamp)] {
        if let (false, Ok(v)) = (value.is_empty(), http::HeaderValue::from_bytes(value)) {
            headers.insert(name, v);
        }
    }
    match source.verify(&headers, body, now) {
        Ok(v) => {
            assert_eq!(v.tenant, "t");
            let ts = std::str::from_utf8(timestamp).expect("a verified timestamp is text").trim();
            let real = bamboohr::sign(KEY.as_bytes(), body, ts);
            let presented = std::str::from_utf8(signature).expect("hex").trim();
            let presented = presented.strip_prefix("sha256=").unwrap_or(presented);
            assert!(presented.eq_ignore_ascii_case(&real), "only the real MAC verifies");
        }
        Err(SignatureError::Stale { age_secs, window_secs }) => assert!(age_secs.abs() > window_secs),
        Err(e) => assert!(!e.to_string().is_empty() && !e.to_string().contains(KEY)),
    }

    let ts = now.timestamp().to_string();
    let mut signed = http::HeaderMap::new();
    signed.insert(bamboohr::TIMESTAMP_HEADER, http::HeaderValue::from_str(&ts).expect("digits"));
    let real = bamboohr::sign(KEY.as_bytes(), body, &ts);
    signed.insert(bamboohr::SIGNATURE_HEADER, http::HeaderValue::from_str(&real).expect("hex"));
    assert_eq!(source.verify(&signed, body, now).expect("signed with the key, now").tenant, "t");

    match source.parse(body) {
        Ok(d) => {
            assert!(!d.key.is_empty() && d.key.len() <= 128, "key length {}", d.key.len());
            assert!(d.key.bytes().all(|b| b.is_ascii_graphic()), "key {:?}", d.key);
            let id = d.employee_id.expect("every BambooHR event names an employee");
            assert!(!id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()));
            assert!(!d.company_id.is_empty() && d.company_id.len() <= 64);
            assert!(d.company_id.chars().all(|c| c.is_ascii_graphic()));
            assert!(d.type_name.starts_with("employee."));
        }
        Err(e) => assert!(!e.0.is_empty()),
    }
});
