//! The test sender: a webhook delivery built and signed as Bob sends it (the v2 envelope,
//! `Bob-Signature` = base64 HMAC-SHA512 of the raw body), posted to a receiver.
//!
//! `POST /hibob/_sim/send` with
//! `{"url", "secret", "type", "employee_id", "company_id", "timestamp"?, "tamper"?}` answers
//! `{"status", "body"}`: the receiver's. `type = "ping"` sends the ping test (`Ping test`);
//! `timestamp` replaces `triggeredAt` (sent as written: Bob's own example has no offset);
//! `tamper` is `"body"` (a byte of the body changed after signing) or `"signature"` (signed
//! with another secret). [`delivery`] builds the same thing for in-process tests.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use chrono::Utc;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha512;

/// The header Bob signs in.
pub const SIGNATURE_HEADER: &str = "Bob-Signature";

/// What to send.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Send {
    /// The receiver (e.g. `http://127.0.0.1:8080/v1/hr/hibob`); unused by [`delivery`].
    #[serde(default)]
    pub url: String,
    pub secret: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub employee_id: String,
    #[serde(default)]
    pub company_id: String,
    /// `triggeredAt` as sent; default: now, as Bob writes it (`2024-12-26T11:29:14.399997`).
    pub timestamp: Option<String>,
    pub tamper: Option<Tamper>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tamper {
    Body,
    Signature,
}

/// The base64 HMAC-SHA512 of `body` with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha512>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The v2 envelope Bob sends for `send`: lifecycle events are triggered by `system`, other
/// changes by an admin; `companyId` is a number when it is one.
pub fn envelope(send: &Send) -> Value {
    let triggered_by = match send.kind.as_str() {
        "employee.joined" | "employee.left" | "employee.activated" | "employee.inactivated" => "system",
        _ => super::ADMIN_ID,
    };
    let company: Value = send.company_id.parse::<u64>().map(Value::from).unwrap_or_else(|_| json!(send.company_id));
    let triggered_at =
        send.timestamp.clone().unwrap_or_else(|| Utc::now().naive_utc().format("%Y-%m-%dT%H:%M:%S%.6f").to_string());
    json!({
        "companyId": company,
        "type": send.kind,
        "triggeredBy": triggered_by,
        "triggeredAt": triggered_at,
        "version": "v2",
        "data": { "employeeId": send.employee_id },
    })
}

/// The headers and body of the delivery, signed (and tampered with) as asked.
pub fn delivery(send: &Send) -> (HeaderMap, Vec<u8>) {
    let (content_type, mut body) = if send.kind == "ping" {
        ("text/plain", b"Ping test".to_vec())
    } else {
        ("application/json", serde_json::to_vec(&envelope(send)).expect("a JSON value serializes"))
    };
    let secret = match send.tamper {
        Some(Tamper::Signature) => format!("{}-not-the-secret", send.secret),
        _ => send.secret.clone(),
    };
    let signature = sign(secret.as_bytes(), &body);
    if send.tamper == Some(Tamper::Body) {
        // Still well-formed, so only the signature can tell: the employee id's last digit.
        let at = body.iter().rposition(u8::is_ascii_digit).unwrap_or(body.len().saturating_sub(1));
        if let Some(b) = body.get_mut(at) {
            *b = if *b == b'9' { b'8' } else { b'9' };
        }
    }
    let mut headers = HeaderMap::new();
    headers.insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(&signature).expect("base64 is a header value"));
    (headers, body)
}

/// `POST /hibob/_sim/send`.
pub(super) async fn send(Json(send): Json<Send>) -> Response {
    let url = match reqwest::Url::parse(&send.url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => u,
        _ => return (StatusCode::BAD_REQUEST, Json(json!({ "error": "url must be an http(s) URL" }))).into_response(),
    };
    if send.kind != "ping" && (send.employee_id.is_empty() || send.company_id.is_empty()) {
        let error = json!({ "error": "employee_id and company_id are required (but for type \"ping\")" });
        return (StatusCode::BAD_REQUEST, Json(error)).into_response();
    }
    let (headers, body) = delivery(&send);
    crate::sender::post_delivery(url.as_str(), &headers, body).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(kind: &str) -> Send {
        Send {
            url: String::new(),
            secret: "s3cret".into(),
            kind: kind.into(),
            employee_id: "3332883894235038486".into(),
            company_id: "637323".into(),
            timestamp: Some("2024-12-26T11:29:14.399997".into()),
            tamper: None,
        }
    }

    #[test]
    fn the_signature_is_base64_hmac_sha512_of_the_exact_body() {
        let (headers, body) = delivery(&send("employee.joined"));
        let sig = headers.get(SIGNATURE_HEADER).unwrap().to_str().unwrap();
        assert_eq!(sig, sign(b"s3cret", &body));
        assert_eq!(base64::engine::general_purpose::STANDARD.decode(sig).unwrap().len(), 64);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["companyId"], json!(637323));
        assert_eq!(v["version"], "v2");
        assert_eq!(v["triggeredBy"], "system");
        assert_eq!(v["data"]["employeeId"], "3332883894235038486");
    }

    #[test]
    fn tampering_breaks_the_signature_and_nothing_else() {
        let (_, clean) = delivery(&send("employee.updated"));
        let mut s = send("employee.updated");
        s.tamper = Some(Tamper::Body);
        let (headers, body) = delivery(&s);
        assert_ne!(body, clean);
        assert!(serde_json::from_slice::<Value>(&body).is_ok());
        assert_eq!(headers.get(SIGNATURE_HEADER).unwrap().to_str().unwrap(), sign(b"s3cret", &clean));
        s.tamper = Some(Tamper::Signature);
        let (headers, body) = delivery(&s);
        assert_eq!(body, clean);
        assert_ne!(headers.get(SIGNATURE_HEADER).unwrap().to_str().unwrap(), sign(b"s3cret", &clean));
    }

    #[test]
    fn a_ping_is_bobs_plain_ping_test_signed() {
        let (headers, body) = delivery(&send("ping"));
        assert_eq!(body, b"Ping test");
        assert_eq!(headers.get(SIGNATURE_HEADER).unwrap().to_str().unwrap(), sign(b"s3cret", b"Ping test"));
    }
}
