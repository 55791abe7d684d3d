//! BambooHR's webhook signature: `X-BambooHR-Signature` is the hex
//! HMAC-SHA256, keyed with the webhook's private key, of the raw body followed
//! directly by the `X-BambooHR-Timestamp` header's value (no separator).
//!
//! Checked over the bytes as received, before anything is parsed; every
//! tenant's key is tried and compared in constant time; a timestamp outside
//! the tolerance is refused even when the signature matches (a replay).

use chrono::{DateTime, NaiveDateTime, TimeZone as _, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::SignatureError;

/// The signature header (HTTP header names are case-insensitive).
pub const SIGNATURE_HEADER: &str = "x-bamboohr-signature";
/// The signed timestamp header.
pub const TIMESTAMP_HEADER: &str = "x-bamboohr-timestamp";

// As BambooHR spells them, for messages.
const SIGNATURE_NAME: &str = "X-BambooHR-Signature";
const TIMESTAMP_NAME: &str = "X-BambooHR-Timestamp";

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8], body: &[u8], timestamp: &str) -> HmacSha256 {
    // HMAC accepts a key of any length; this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(body);
    mac.update(timestamp.as_bytes());
    mac
}

/// The signature BambooHR sends for `body` at `timestamp`: lowercase hex.
pub fn sign(key: &[u8], body: &[u8], timestamp: &str) -> String {
    hex::encode(mac(key, body, timestamp).finalize().into_bytes())
}

/// Which tenant's key signed the delivery, or why none did.
pub(super) fn verify<'a>(
    headers: &http::HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
    tolerance_secs: i64,
    keys: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> Result<&'a str, SignatureError> {
    let timestamp = header(headers, TIMESTAMP_HEADER, TIMESTAMP_NAME)?;
    let presented = header(headers, SIGNATURE_HEADER, SIGNATURE_NAME)?;
    let presented = decode_signature(presented).ok_or(SignatureError::Malformed(SIGNATURE_NAME))?;
    let signed_at = parse_timestamp(timestamp).ok_or(SignatureError::Malformed(TIMESTAMP_NAME))?;

    // Every key is tried, without stopping at the first match, so the time
    // taken does not depend on which tenant (if any) signed it.
    let mut signed_by = None;
    for (tenant, key) in keys {
        let matches = mac(key, body, timestamp).verify_slice(&presented).is_ok();
        if matches && signed_by.is_none() {
            signed_by = Some(tenant);
        }
    }
    let tenant = signed_by.ok_or(SignatureError::Mismatch)?;

    let age_secs = (now - signed_at).num_seconds();
    if age_secs.abs() > tolerance_secs {
        return Err(SignatureError::Stale { age_secs, window_secs: tolerance_secs });
    }
    Ok(tenant)
}

fn header<'h>(headers: &'h http::HeaderMap, name: &str, shown: &'static str) -> Result<&'h str, SignatureError> {
    let value = headers.get(name).ok_or(SignatureError::Missing(shown))?;
    let value = value.to_str().map_err(|_| SignatureError::Malformed(shown))?.trim();
    if value.is_empty() {
        return Err(SignatureError::Missing(shown));
    }
    Ok(value)
}

/// 64 hex digits (either case); a `sha256=` prefix is tolerated.
fn decode_signature(value: &str) -> Option<[u8; 32]> {
    let hex_part = value.strip_prefix("sha256=").unwrap_or(value);
    if hex_part.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_part, &mut out).ok()?;
    Some(out)
}

/// BambooHR's pages call the header "the timestamp when the request was sent"
/// without a format: Unix seconds (milliseconds from 12 digits on) and ISO
/// 8601 are all read. The signature covers the header's text as sent, whatever
/// its format.
pub(super) fn parse_timestamp(value: &str) -> Option<DateTime<Utc>> {
    let value = value.trim();
    if !value.is_empty() && value.len() <= 16 && value.bytes().all(|b| b.is_ascii_digit()) {
        let n: i64 = value.parse().ok()?;
        return if value.len() >= 12 { Utc.timestamp_millis_opt(n).single() } else { Utc.timestamp_opt(n, 0).single() };
    }
    parse_iso(value)
}

/// ISO 8601 as BambooHR writes it (`2026-01-31T18:42:00+0000`), RFC 3339, or
/// without an offset (read as UTC).
pub(super) fn parse_iso(value: &str) -> Option<DateTime<Utc>> {
    if value.len() > 40 {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(t) = DateTime::parse_from_str(value, format) {
            return Some(t.with_timezone(&Utc));
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(value, format) {
            return Some(t.and_utc());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const BODY: &[u8] = br#"{"type":"employee.updated","timestamp":"2026-01-31T18:42:00+0000","data":{"companyId":"12345","employeeId":"67890","changedFields":["firstName"]}}"#;

    fn now() -> DateTime<Utc> {
        Utc.timestamp_opt(1_769_884_920, 0).unwrap()
    }

    fn signed(key: &[u8], timestamp: &str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert("X-BambooHR-Timestamp", HeaderValue::from_str(timestamp).unwrap());
        headers.insert("X-BambooHR-Signature", HeaderValue::from_str(&sign(key, BODY, timestamp)).unwrap());
        headers
    }

    fn keys() -> Vec<(&'static str, &'static [u8])> {
        vec![("acme", b"acme-key".as_slice()), ("beta", b"beta-key".as_slice())]
    }

    #[test]
    fn the_signature_is_hmac_sha256_hex_of_body_then_timestamp() {
        // Computed independently: printf '%s%s' "$BODY" 1769884920 | openssl dgst -sha256 -hmac k
        assert_eq!(sign(b"k", BODY, "1769884920"), "8e6a2ae092abc6769b01c23d5747b3352edbb92c9a3826b16ec3ff1332f78603");
        assert_eq!(sign(b"k", BODY, "1769884920").len(), 64);
        assert!(sign(b"k", BODY, "1769884920").bytes().all(|b| !b.is_ascii_uppercase()));
    }

    #[test]
    fn the_key_that_signed_picks_the_tenant() {
        let ts = "1769884920";
        assert_eq!(verify(&signed(b"beta-key", ts), BODY, now(), 300, keys().into_iter()), Ok("beta"));
        assert_eq!(verify(&signed(b"acme-key", ts), BODY, now(), 300, keys().into_iter()), Ok("acme"));
        assert_eq!(
            verify(&signed(b"other-key", ts), BODY, now(), 300, keys().into_iter()),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_changed_body_or_timestamp_does_not_verify() {
        let headers = signed(b"acme-key", "1769884920");
        let mut tampered = BODY.to_vec();
        tampered[40] ^= 1;
        assert_eq!(verify(&headers, &tampered, now(), 300, keys().into_iter()), Err(SignatureError::Mismatch));
        let mut moved = headers.clone();
        moved.insert("X-BambooHR-Timestamp", HeaderValue::from_static("1769884921"));
        assert_eq!(verify(&moved, BODY, now(), 300, keys().into_iter()), Err(SignatureError::Mismatch));
    }

    #[test]
    fn an_old_or_future_timestamp_is_stale_even_when_signed() {
        let old = (now().timestamp() - 301).to_string();
        let err = verify(&signed(b"acme-key", &old), BODY, now(), 300, keys().into_iter()).unwrap_err();
        assert_eq!(err, SignatureError::Stale { age_secs: 301, window_secs: 300 });
        let ahead = (now().timestamp() + 400).to_string();
        assert!(matches!(
            verify(&signed(b"acme-key", &ahead), BODY, now(), 300, keys().into_iter()),
            Err(SignatureError::Stale { .. })
        ));
        let edge = (now().timestamp() - 300).to_string();
        assert_eq!(verify(&signed(b"acme-key", &edge), BODY, now(), 300, keys().into_iter()), Ok("acme"));
    }

    #[test]
    fn missing_and_malformed_headers_are_named() {
        let mut headers = signed(b"acme-key", "1769884920");
        headers.remove("X-BambooHR-Signature");
        assert_eq!(
            verify(&headers, BODY, now(), 300, keys().into_iter()),
            Err(SignatureError::Missing("X-BambooHR-Signature"))
        );
        let mut headers = signed(b"acme-key", "1769884920");
        headers.insert("X-BambooHR-Signature", HeaderValue::from_static("zz"));
        assert_eq!(
            verify(&headers, BODY, now(), 300, keys().into_iter()),
            Err(SignatureError::Malformed("X-BambooHR-Signature"))
        );
        let mut headers = signed(b"acme-key", "1769884920");
        headers.insert("X-BambooHR-Timestamp", HeaderValue::from_static("yesterday"));
        assert_eq!(
            verify(&headers, BODY, now(), 300, keys().into_iter()),
            Err(SignatureError::Malformed("X-BambooHR-Timestamp"))
        );
        let mut headers = signed(b"acme-key", "1769884920");
        headers.remove("X-BambooHR-Timestamp");
        assert_eq!(
            verify(&headers, BODY, now(), 300, keys().into_iter()),
            Err(SignatureError::Missing("X-BambooHR-Timestamp"))
        );
    }

    #[test]
    fn upper_case_hex_and_iso_timestamps_verify() {
        let ts = "2026-01-31T18:42:00+0000";
        let mut headers = signed(b"acme-key", ts);
        let upper = sign(b"acme-key", BODY, ts).to_ascii_uppercase();
        headers.insert("X-BambooHR-Signature", HeaderValue::from_str(&upper).unwrap());
        assert_eq!(verify(&headers, BODY, now(), 300, keys().into_iter()), Ok("acme"));
    }

    #[test]
    fn timestamps_in_the_shapes_seen() {
        let want = Utc.timestamp_opt(1_769_884_920, 0).unwrap();
        assert_eq!(parse_timestamp("1769884920"), Some(want));
        assert_eq!(parse_timestamp("1769884920000"), Some(want));
        assert_eq!(parse_timestamp("2026-01-31T18:42:00+0000"), Some(want));
        assert_eq!(parse_timestamp("2026-01-31T18:42:00+00:00"), Some(want));
        assert_eq!(parse_timestamp("2026-01-31T18:42:00Z"), Some(want));
        assert_eq!(parse_timestamp("2026-01-31T19:42:00+0100"), Some(want));
        assert_eq!(parse_timestamp("2026-01-31 18:42:00"), Some(want));
        assert_eq!(parse_timestamp(""), None);
        assert_eq!(parse_timestamp("99999999999999999"), None);
        assert_eq!(parse_timestamp("-5"), None);
    }
}
