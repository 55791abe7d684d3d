//! The test sender: a Personio webhook delivery, built and signed as lifecycle reads Personio's
//! scheme (docs/hr/personio.md: HMAC-SHA256 over the timestamp, a `.`, and the raw body; hex
//! in `X-Personio-Signature`, Unix seconds in `X-Personio-Timestamp`). It is written apart from
//! the receiver's code on purpose, so a test proves the two agree rather than share a bug.

use axum::extract::State as AxState;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use axum::Json;
use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;

use crate::sim::Sim;

pub const SIGNATURE_HEADER: &str = "x-personio-signature";
pub const TIMESTAMP_HEADER: &str = "x-personio-timestamp";

/// Hex HMAC-SHA256 of `timestamp "." body` with `secret`.
pub fn sign(secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The body Personio sends for `event_name` about person `employee_id`: ids only. Employment
/// events name the employment (the simulator's `<person id>-1`) and its person.
pub fn body(event_name: &str, employee_id: &str, company_id: &str, occurred_at: DateTime<Utc>) -> Vec<u8> {
    let payload = if event_name.starts_with("employment.") {
        json!({ "id": format!("{employee_id}-1"), "person": { "id": employee_id } })
    } else {
        json!({ "id": employee_id })
    };
    let body = json!({
        "company_id": company_id,
        "event_name": event_name,
        "occurred_at": occurred_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "payload": payload,
        "meta": {},
    });
    serde_json::to_vec(&body).expect("a JSON value serializes")
}

/// A signed delivery: its headers (content type, signature, timestamp) and body.
pub fn delivery(
    secret: &str,
    event_name: &str,
    employee_id: &str,
    company_id: &str,
    timestamp: DateTime<Utc>,
) -> (HeaderMap, Vec<u8>) {
    let body = body(event_name, employee_id, company_id, timestamp);
    let ts = timestamp.timestamp().to_string();
    let signature = sign(secret, &ts, &body);
    let mut headers = HeaderMap::new();
    headers.insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(HeaderName::from_static(SIGNATURE_HEADER), HeaderValue::from_str(&signature).expect("hex"));
    headers.insert(HeaderName::from_static(TIMESTAMP_HEADER), HeaderValue::from_str(&ts).expect("digits"));
    (headers, body)
}

/// `POST /personio/_sim/send`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    pub url: String,
    pub secret: String,
    #[serde(rename = "type")]
    pub event_name: String,
    pub employee_id: String,
    pub company_id: String,
    /// When the event happened and the delivery was signed (default: now).
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
    /// Spoil the delivery after signing: `"body"` or `"signature"`.
    #[serde(default)]
    pub tamper: Option<Tamper>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tamper {
    Body,
    Signature,
}

pub(super) async fn send(AxState(_sim): AxState<Sim>, Json(request): Json<SendRequest>) -> Response {
    let timestamp = request.timestamp.unwrap_or_else(Utc::now);
    let (mut headers, mut body) =
        delivery(&request.secret, &request.event_name, &request.employee_id, &request.company_id, timestamp);
    match request.tamper {
        // Another person in the same, still well-formed, body.
        Some(Tamper::Body) => {
            body = self::body(&request.event_name, &format!("{}9", request.employee_id), &request.company_id, timestamp)
        }
        Some(Tamper::Signature) => {
            let signed = headers[SIGNATURE_HEADER].to_str().unwrap_or_default();
            let flipped: String = signed
                .char_indices()
                .map(|(i, c)| {
                    if i == 0 {
                        if c == '0' {
                            '1'
                        } else {
                            '0'
                        }
                    } else {
                        c
                    }
                })
                .collect();
            headers.insert(HeaderName::from_static(SIGNATURE_HEADER), HeaderValue::from_str(&flipped).expect("hex"));
        }
        None => {}
    }
    crate::sender::post_delivery(&request.url, &headers, body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_covers_the_timestamp_and_the_body() {
        let at = DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z").unwrap().with_timezone(&Utc);
        let (headers, body) = delivery("k", "person.created", "1001", "41234", at);
        assert_eq!(headers[TIMESTAMP_HEADER], "1796115600");
        assert_eq!(headers[SIGNATURE_HEADER].to_str().unwrap(), sign("k", "1796115600", &body));
        assert_ne!(sign("k", "1796115601", &body), sign("k", "1796115600", &body));
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["payload"]["id"], "1001");
        assert_eq!(v["company_id"], "41234");
    }
}
