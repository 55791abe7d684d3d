//! HiBob's receiver: `Bob-Signature` over the raw body, then the v2 envelope parser.
//!
//! Input: the first line is the `Bob-Signature` header value (absent when the line is
//! empty), the rest the body. The body is verified twice: with the fuzzed header, and signed
//! with the tenant's secret (so the parser is reached with every body).
//! Asserts: no panic; a fuzzed header verifies only when it is the body's real signature; a
//! parsed delivery has a bounded printable key and, unless a ping, an employee and a time.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use lifecycle_hris::hibob;
use lifecycle_hris::{DeliveryKind, Source};

const SECRET: &str = "fuzz-webhook-secret";

fuzz_target!(|data: &[u8]| {
    let bob = hibob::source(
        &serde_json::json!({ "tenants": [{ "name": "t", "company_id": "637323", "webhook_secret": SECRET,
            "service_user_id": "u", "service_user_token": "p" }] }),
        Duration::from_secs(1),
    )
    .expect("valid config");
    let (line, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&data[..0], data),
    };
    let now = chrono::Utc::now();
    let real = hibob::sign(SECRET.as_bytes(), body);

    let mut headers = http::HeaderMap::new();
    if let Ok(value) = http::HeaderValue::from_bytes(line) {
        if !line.is_empty() {
            headers.insert(hibob::SIGNATURE_HEADER, value);
        }
    }
    if bob.verify(&headers, body, now).is_ok() {
        // Only the real MAC verifies (base64 padding aside, which the decoder enforces).
        assert_eq!(line.trim_ascii(), real.as_bytes());
    }

    let mut signed = http::HeaderMap::new();
    signed.insert(hibob::SIGNATURE_HEADER, http::HeaderValue::from_str(&real).expect("base64"));
    assert_eq!(bob.verify(&signed, body, now).expect("signed with the secret").tenant, "t");

    match bob.parse(body) {
        Ok(d) => {
            assert!(!d.key.is_empty() && d.key.len() <= 512, "key length {}", d.key.len());
            assert!(d.key.bytes().all(|b| b.is_ascii_graphic()), "key {:?}", d.key);
            if d.kind != DeliveryKind::Ping {
                assert!(d.employee_id.is_some() && d.occurred_at.is_some());
                assert!(!d.company_id.is_empty());
            }
        }
        Err(e) => assert!(!e.0.is_empty()),
    }
});
