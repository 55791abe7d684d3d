//! Whole exchanges (request and response, bodies included) for the contract tests, which check
//! every request a client makes, and every answer the simulator gives, against the vendor's
//! published API definition (shared/vendors/tests/contract).
//!
//! Off unless a test turns it on ([`crate::Sim::record_exchanges`]): buffering both bodies of
//! every request costs memory and time the benchmarks must not pay. Credentials never reach it:
//! `Authorization` keeps only its scheme, token headers and token fields are redacted.

use axum::body::{to_bytes, Body};
use axum::extract::{OriginalUri, Query, Request};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::Value;

use crate::registry::Vendor;

/// Bodies larger than this are not buffered (none of a contract test's are).
const MAX_BODY: usize = 8 << 20;

/// Header names whose values are credentials.
const SECRET_HEADERS: &[&str] = &["x-api-token", "circle-token", "x-cs-token", "cookie"];

/// JSON fields whose values are credentials (token answers).
const SECRET_FIELDS: &[&str] = &["access_token", "refresh_token", "client_secret", "password"];

/// One request and what the simulator answered.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub vendor: Vendor,
    pub method: String,
    /// The path as the client sent it, the simulator's vendor prefix included
    /// (e.g. `/pipedrive/api/v2/deals/7`).
    pub path: String,
    /// The query string's pairs, decoded, in order (a repeated parameter appears repeatedly).
    pub query: Vec<(String, String)>,
    /// Request headers, names lower-cased; credentials redacted (`Authorization` keeps its scheme).
    pub headers: Vec<(String, String)>,
    /// The request body: JSON when it parses as JSON, else a string (form bodies), `None` if empty.
    pub body: Option<Value>,
    pub status: u16,
    pub response_headers: Vec<(String, String)>,
    pub response: Option<Value>,
}

impl Exchange {
    /// The first value of request header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The first value of response header `name` (lower case).
    pub fn response_header(&self, name: &str) -> Option<&str> {
        self.response_headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Buffers both bodies, calls `next`, and hands the exchange to `keep`.
pub(crate) async fn capture<F, Fut>(vendor: Vendor, req: Request, next: F, keep: impl FnOnce(Exchange)) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let (parts, body) = req.into_parts();
    let path =
        parts.extensions.get::<OriginalUri>().map_or_else(|| parts.uri.path().to_owned(), |o| o.path().to_owned());
    let query = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
        .map(|Query(pairs)| pairs)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let v = if crate::calls::is_secret_param(&k) { "REDACTED".to_owned() } else { v };
            (k, v)
        })
        .collect();
    let headers = redacted(&parts.headers);
    let method = parts.method.to_string();
    let bytes = to_bytes(body, MAX_BODY).await.unwrap_or_default();
    let body = parse(&bytes);
    let response = next(Request::from_parts(parts, Body::from(bytes))).await;

    let (rparts, rbody) = response.into_parts();
    let rbytes = to_bytes(rbody, MAX_BODY).await.unwrap_or_default();
    let mut answer = parse(&rbytes);
    if let Some(a) = answer.as_mut() {
        redact_fields(a);
    }
    keep(Exchange {
        vendor,
        method,
        path,
        query,
        headers,
        body,
        status: rparts.status.as_u16(),
        response_headers: rparts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect(),
        response: answer,
    });
    Response::from_parts(rparts, Body::from(rbytes))
}

fn parse(bytes: &[u8]) -> Option<Value> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    Some(serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned())))
}

fn redacted(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| {
            let name = k.as_str().to_owned();
            let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
            let value = if name == "authorization" {
                // The scheme says where the credential went; the rest is the credential.
                format!("{} REDACTED", value.split_whitespace().next().unwrap_or(""))
            } else if SECRET_HEADERS.contains(&name.as_str()) {
                "REDACTED".to_owned()
            } else {
                value
            };
            (name, value)
        })
        .collect()
}

fn redact_fields(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if SECRET_FIELDS.contains(&k.as_str()) && v.is_string() {
                    *v = Value::String("REDACTED".into());
                } else {
                    redact_fields(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_fields),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted_and_the_scheme_kept() {
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer s3cret".parse().unwrap());
        h.insert("x-api-token", "s3cret".parse().unwrap());
        h.insert("content-type", "application/json".parse().unwrap());
        let got = redacted(&h);
        assert!(got.contains(&("authorization".into(), "Bearer REDACTED".into())));
        assert!(got.contains(&("x-api-token".into(), "REDACTED".into())));
        assert!(got.contains(&("content-type".into(), "application/json".into())));
        let mut body = serde_json::json!({"access_token": "t", "resources": [{"password": "p", "uid": "a"}]});
        redact_fields(&mut body);
        assert_eq!(
            body,
            serde_json::json!({"access_token": "REDACTED", "resources": [{"password": "REDACTED", "uid": "a"}]})
        );
    }
}
