//! The test sender: an event-based webhook delivery built and signed as BambooHR sends it, posted
//! to a receiver.
//!
//! The body is `{"type", "timestamp", "data": {"companyId", "employeeId", "changedFields"}}`
//! (`changedFields` on `employee.updated` only: the other two events take no monitor fields),
//! or the same fields form-encoded. `X-BambooHR-Timestamp` is the sending time in Unix seconds
//! and `X-BambooHR-Signature` the lowercase hex HMAC-SHA256, keyed with the webhook's private
//! key, of the raw body followed directly by that header's text.
//!
//! `POST /bamboohr/_sim/send` with
//! `{"url", "secret", "type", "employee_id", "company_id", "timestamp"?, "tamper"?,
//! "changed_fields"?, "encoding"?}` answers `{"status", "body"}`: the receiver's. `timestamp`
//! (RFC 3339 or Unix seconds) replaces the sending time, in the header and the body alike (a
//! stale delivery); `tamper` is `"body"` (a digit of the body changed after signing) or
//! `"signature"` (signed with another key); `encoding` is `"json"` (default) or `"form"`.
//! [`delivery`] builds the same thing for in-process tests.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, TimeZone as _, Utc};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;

pub const SIGNATURE_HEADER: &str = "X-BambooHR-Signature";
pub const TIMESTAMP_HEADER: &str = "X-BambooHR-Timestamp";

/// What to send.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Send {
    /// The receiver (e.g. `http://127.0.0.1:8080/v1/hr/bamboohr`); unused by [`delivery`].
    #[serde(default)]
    pub url: String,
    /// The webhook's private key.
    pub secret: String,
    /// `employee.created`, `employee.updated` or `employee.deleted` (anything else is sent as
    /// written, to see a receiver refuse it).
    #[serde(rename = "type")]
    pub kind: String,
    pub employee_id: String,
    pub company_id: String,
    /// When it was sent; default: now.
    #[serde(default)]
    pub timestamp: Option<String>,
    #[serde(default)]
    pub tamper: Option<Tamper>,
    /// `data.changedFields` of an `employee.updated`; default `["department"]`.
    #[serde(default)]
    pub changed_fields: Option<Vec<String>>,
    #[serde(default)]
    pub encoding: Encoding,
}

impl Send {
    /// A JSON delivery of `kind`, sent now, untampered.
    pub fn new(secret: &str, kind: &str, employee_id: &str, company_id: &str) -> Self {
        Send {
            url: String::new(),
            secret: secret.into(),
            kind: kind.into(),
            employee_id: employee_id.into(),
            company_id: company_id.into(),
            timestamp: None,
            tamper: None,
            changed_fields: None,
            encoding: Encoding::Json,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tamper {
    Body,
    Signature,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    #[default]
    Json,
    Form,
}

/// The lowercase hex HMAC-SHA256 of `body` followed by `timestamp`, keyed with `secret`.
pub fn sign(secret: &[u8], body: &[u8], timestamp: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(body);
    mac.update(timestamp.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// The sending time: `timestamp` as RFC 3339 or Unix seconds, else now.
fn sent_at(send: &Send) -> Result<DateTime<Utc>, String> {
    let Some(raw) = send.timestamp.as_deref().map(str::trim) else { return Ok(Utc::now()) };
    if let Ok(secs) = raw.parse::<i64>() {
        return Utc.timestamp_opt(secs, 0).single().ok_or_else(|| format!("timestamp {raw} is out of range"));
    }
    DateTime::parse_from_rfc3339(raw)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| format!("timestamp {raw:?} is neither RFC 3339 nor Unix seconds"))
}

/// The body BambooHR posts (its own timestamp format: `2026-01-31T18:42:00+0000`).
pub fn body(send: &Send, at: DateTime<Utc>) -> Vec<u8> {
    let timestamp = at.format("%Y-%m-%dT%H:%M:%S+0000").to_string();
    let changed = (send.kind == "employee.updated")
        .then(|| send.changed_fields.clone().unwrap_or_else(|| vec!["department".to_owned()]));
    match send.encoding {
        Encoding::Json => {
            let mut data = json!({ "companyId": send.company_id, "employeeId": send.employee_id });
            if let Some(changed) = changed {
                data["changedFields"] = json!(changed);
            }
            let body = json!({ "type": send.kind, "timestamp": timestamp, "data": data });
            serde_json::to_vec(&body).expect("a JSON value serializes")
        }
        Encoding::Form => {
            let mut pairs = vec![
                ("type".to_owned(), send.kind.clone()),
                ("timestamp".to_owned(), timestamp),
                ("data[companyId]".to_owned(), send.company_id.clone()),
                ("data[employeeId]".to_owned(), send.employee_id.clone()),
            ];
            for (i, field) in changed.unwrap_or_default().into_iter().enumerate() {
                pairs.push((format!("data[changedFields][{i}]"), field));
            }
            let encoded: Vec<String> =
                pairs.iter().map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v))).collect();
            encoded.join("&").into_bytes()
        }
    }
}

/// `application/x-www-form-urlencoded`: unreserved characters as they are, a space as `+`,
/// every other byte as `%XX`.
fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => (b as char).to_string(),
            b' ' => "+".to_owned(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// The headers and body of the delivery, signed (and tampered with) as asked. An unreadable
/// `timestamp` is an error; [`Send::new`]'s never is.
pub fn delivery(send: &Send) -> Result<(HeaderMap, Vec<u8>), String> {
    let at = sent_at(send)?;
    let mut body = body(send, at);
    let timestamp = at.timestamp().to_string();
    let secret = match send.tamper {
        Some(Tamper::Signature) => format!("{}-not-the-key", send.secret),
        _ => send.secret.clone(),
    };
    let signature = sign(secret.as_bytes(), &body, &timestamp);
    if send.tamper == Some(Tamper::Body) {
        // Still well-formed, so only the signature can tell: the last digit of the body.
        if let Some(b) = body.iter_mut().rev().find(|b| b.is_ascii_digit()) {
            *b = if *b == b'9' { b'8' } else { b'9' };
        }
    }
    let content_type = match send.encoding {
        Encoding::Json => "application/json",
        Encoding::Form => "application/x-www-form-urlencoded",
    };
    let mut headers = HeaderMap::new();
    headers.insert(axum::http::header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(TIMESTAMP_HEADER, HeaderValue::from_str(&timestamp).expect("digits are a header value"));
    headers.insert(SIGNATURE_HEADER, HeaderValue::from_str(&signature).expect("hex is a header value"));
    Ok((headers, body))
}

/// `POST /bamboohr/_sim/send`.
pub(super) async fn send(Json(send): Json<Send>) -> Response {
    let bad = |error: String| (StatusCode::BAD_REQUEST, Json(json!({ "error": error }))).into_response();
    let url = match reqwest::Url::parse(&send.url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => u,
        _ => return bad("url must be an http(s) URL".into()),
    };
    if send.employee_id.is_empty() || send.company_id.is_empty() {
        return bad("employee_id and company_id are required".into());
    }
    let (headers, body) = match delivery(&send) {
        Ok(d) => d,
        Err(e) => return bad(e),
    };
    crate::sender::post_delivery(url.as_str(), &headers, body).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn send(kind: &str) -> Send {
        Send { timestamp: Some("1769884920".into()), ..Send::new("s3cret", kind, "67890", "12345") }
    }

    #[test]
    fn the_body_is_the_documented_shape_and_the_signature_covers_body_then_timestamp() {
        let (headers, body) = delivery(&send("employee.updated")).unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            json!({"type": "employee.updated", "timestamp": "2026-01-31T18:42:00+0000",
                   "data": {"companyId": "12345", "employeeId": "67890", "changedFields": ["department"]}})
        );
        assert_eq!(headers.get(TIMESTAMP_HEADER).unwrap(), "1769884920");
        assert_eq!(headers.get(SIGNATURE_HEADER).unwrap().to_str().unwrap(), sign(b"s3cret", &body, "1769884920"));
        let (_, created) = delivery(&send("employee.created")).unwrap();
        let v: Value = serde_json::from_slice(&created).unwrap();
        assert!(v["data"].get("changedFields").is_none(), "created takes no monitor fields");
    }

    #[test]
    fn tampering_breaks_the_signature_and_nothing_else() {
        let (_, clean) = delivery(&send("employee.updated")).unwrap();
        let mut s = send("employee.updated");
        s.tamper = Some(Tamper::Body);
        let (headers, body) = delivery(&s).unwrap();
        assert_ne!(body, clean);
        assert!(serde_json::from_slice::<Value>(&body).is_ok());
        assert_eq!(headers.get(SIGNATURE_HEADER).unwrap().to_str().unwrap(), sign(b"s3cret", &clean, "1769884920"));
        s.tamper = Some(Tamper::Signature);
        let (headers, body) = delivery(&s).unwrap();
        assert_eq!(body, clean);
        assert_ne!(headers.get(SIGNATURE_HEADER).unwrap().to_str().unwrap(), sign(b"s3cret", &clean, "1769884920"));
    }

    #[test]
    fn a_form_post_and_an_unreadable_timestamp() {
        let mut s = send("employee.updated");
        s.encoding = Encoding::Form;
        let (headers, body) = delivery(&s).unwrap();
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with("type=employee.updated&timestamp="), "{text}");
        assert!(text.contains("data%5BemployeeId%5D=67890"), "{text}");
        assert_eq!(headers.get("content-type").unwrap(), "application/x-www-form-urlencoded");
        s.timestamp = Some("noon".into());
        assert!(delivery(&s).is_err());
    }
}
