//! What the HR systems' test senders share: posting a delivery, built and signed by the
//! source's own folder (`<source>/sender.rs`), to a receiver, and answering with what the
//! receiver answered.

use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// POSTs `body` with `headers` to `url`; answers `{"status", "body"}` (the receiver's body as
/// JSON when it is JSON, else as text), or 502 when the receiver cannot be reached.
pub(crate) async fn post_delivery(url: &str, headers: &HeaderMap, body: Vec<u8>) -> Response {
    let mut request = reqwest::Client::new().post(url).body(body);
    for (name, value) in headers {
        request = request.header(name.as_str(), value.as_bytes());
    }
    match request.send().await {
        Ok(answer) => {
            let status = answer.status().as_u16();
            let text = answer.text().await.unwrap_or_default();
            let body = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
            Json(json!({ "status": status, "body": body })).into_response()
        }
        Err(e) => (StatusCode::BAD_GATEWAY, Json(json!({ "error": format!("cannot reach the receiver: {e}") })))
            .into_response(),
    }
}
