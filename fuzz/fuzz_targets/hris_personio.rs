//! Personio's receiver: `X-Personio-Signature` / `X-Personio-Timestamp` over the raw body, then
//! the webhook envelope parser.
//!
//! Input: the first line is the signature header value, the second the timestamp header value
//! (each absent when its line is empty), the rest the body. The body is verified with the
//! fuzzed headers, then signed with the tenant's secret at the current time (so the parser is
//! reached with every body).
//! Asserts: no panic; fuzzed headers verify a body only when they carry a real MAC of it under
//! the secret (recomputed here, hex or base64, for either timestamp they name); a parsed delivery has a bounded
//! printable key, a company, an employee and a time; every refusal has a message.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use lifecycle_hris::personio;
use lifecycle_hris::Source;

const SECRET: &str = "fuzz-webhook-secret";

fn hmac_raw(timestamp: &[u8], separator: &[u8], body: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, Mac};
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key length");
    m.update(timestamp);
    m.update(separator);
    m.update(body);
    m.finalize().into_bytes().to_vec()
}

fn hmac_hex(timestamp: &[u8], separator: &[u8], body: &[u8]) -> String {
    hex::encode(hmac_raw(timestamp, separator, body))
}

fuzz_target!(|data: &[u8]| {
    let source = personio::source(
        &serde_json::json!({ "tenants": [{ "name": "t", "company_id": "41234", "webhook_secret": SECRET,
            "client_id": "id", "client_secret": "secret" }] }),
        Duration::from_secs(1),
    )
    .expect("valid config");
    let mut lines = data.splitn(3, |b| *b == b'\n');
    let signature = lines.next().unwrap_or_default();
    let timestamp = lines.next().unwrap_or_default();
    let body = lines.next().unwrap_or_default();
    let now = chrono::Utc::now();

    let mut headers = http::HeaderMap::new();
    for (name, value) in [(personio::SIGNATURE_HEADER, signature), (personio::TIMESTAMP_HEADER, timestamp)] {
        if let (false, Ok(v)) = (value.is_empty(), http::HeaderValue::from_bytes(value)) {
            headers.insert(name, v);
        }
    }
    if source.verify(&headers, body, now).is_ok() {
        // Only a real MAC of this body under the secret verifies: the fuzzer cannot forge one,
        // so reaching here means the verifier accepted something it should not have.
        let raw = String::from_utf8_lossy(signature);
        let mut stamps = vec![String::from_utf8_lossy(timestamp).trim().to_owned()];
        stamps.extend(raw.split(',').filter_map(|p| p.trim().strip_prefix("t=")).map(str::to_owned));
        let forged = !stamps.iter().any(|ts| {
            [&b"."[..], b""].iter().any(|sep| {
                let mac = hmac_raw(ts.as_bytes(), sep, body);
                use base64::Engine as _;
                raw.to_ascii_lowercase().contains(&hex::encode(&mac))
                    || raw.contains(&base64::engine::general_purpose::STANDARD.encode(&mac))
            })
        });
        assert!(!forged, "a signature that is no MAC of the body verified");
    }

    let ts = now.timestamp().to_string();
    let mut signed = http::HeaderMap::new();
    signed
        .insert(personio::SIGNATURE_HEADER, http::HeaderValue::from_str(&hmac_hex(ts.as_bytes(), b".", body)).unwrap());
    signed.insert(personio::TIMESTAMP_HEADER, http::HeaderValue::from_str(&ts).unwrap());
    assert_eq!(source.verify(&signed, body, now).expect("signed with the secret").tenant, "t");

    match source.parse(body) {
        Ok(d) => {
            assert!(!d.key.is_empty() && d.key.len() <= 255, "key length {}", d.key.len());
            assert!(d.key.bytes().all(|b| b.is_ascii_graphic()), "key {:?}", d.key);
            assert!(d.employee_id.is_some() && d.occurred_at.is_some());
            assert!(!d.company_id.is_empty());
        }
        Err(e) => assert!(!e.0.is_empty()),
    }
});
