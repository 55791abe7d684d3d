//! Errors as `application/problem+json` (RFC 9457), naming each bad field.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lifecycle_domain::FieldError;
use serde::Serialize;

/// `Retry-After` (seconds) of an answer given while the database is
/// unreachable: about what a PostgreSQL restart or a replica's promotion
/// takes. Every write is idempotent under its key (the intake's
/// `Idempotency-Key`, SCIM's resource, a webhook's delivery id), so the retry
/// is safe whether or not the first attempt was kept.
pub const STORE_RETRY_AFTER: &str = "5";

/// A problem response. Boxed: it travels in `Err` through every handler.
#[derive(Debug)]
pub struct Problem(Box<Body>);

#[derive(Debug, Serialize)]
struct Body {
    #[serde(rename = "type")]
    kind: String,
    title: &'static str,
    status: u16,
    detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<FieldError>,
    #[serde(skip)]
    slug: &'static str,
    #[serde(skip)]
    extra_headers: Vec<(header::HeaderName, HeaderValue)>,
    /// Set by a credential check that found the presented credential wrong.
    #[serde(skip)]
    wrong_credential: bool,
}

impl Problem {
    pub fn new(status: StatusCode, slug: &'static str, title: &'static str, detail: impl Into<String>) -> Self {
        Problem(Box::new(Body {
            kind: format!("/problems/{slug}"),
            title,
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
            slug,
            extra_headers: Vec::new(),
            wrong_credential: false,
        }))
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.0.errors = errors;
        self
    }

    pub fn with_header(mut self, name: header::HeaderName, value: &'static str) -> Self {
        self.0.extra_headers.push((name, HeaderValue::from_static(value)));
        self
    }

    /// 503 with `Retry-After`: the database did not answer (it is down, restarting,
    /// failing over, or every connection is busy past `database.acquire_timeout`).
    /// `detail` tells the caller what became of the request (nothing kept, retry
    /// with the same key); the database's own words go to the log only, with
    /// `during` saying what was being done.
    pub fn store_unavailable(error: &dyn std::fmt::Display, during: &'static str, detail: &str) -> Self {
        tracing::error!(error = %error, during, "the database did not answer");
        metrics::counter!("lifecycle_store_unavailable_total", "during" => during).increment(1);
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service unavailable", detail)
            .with_header(header::RETRY_AFTER, STORE_RETRY_AFTER)
    }

    pub fn unauthorized(detail: &str) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized", detail)
            .with_header(header::WWW_AUTHENTICATE, "Bearer")
    }

    /// Marks the answer for the throttle: a credential was presented and is
    /// wrong (`lifecycle_listener::AuthVerdict::Wrong`).
    pub fn wrong_credential(mut self) -> Self {
        self.0.wrong_credential = true;
        self
    }

    /// A short word for logs and metrics ("invalid-event").
    pub fn slug(&self) -> &'static str {
        self.0.slug
    }

    pub fn status(&self) -> u16 {
        self.0.status
    }

    pub fn detail(&self) -> &str {
        &self.0.detail
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&*self.0).expect("a problem always serializes");
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        for (k, v) in self.0.extra_headers {
            headers.insert(k, v);
        }
        if self.0.wrong_credential {
            response.extensions_mut().insert(lifecycle_listener::AuthVerdict::Wrong);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_store_that_did_not_answer_is_503_with_retry_after_and_no_database_words() {
        let problem = Problem::store_unavailable(
            &"pool timed out while waiting for an open connection at postgres://secret@db",
            "accepting an event",
            "the event could not be stored; nothing was kept, retry with the same Idempotency-Key",
        );
        let response = problem.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], STORE_RETRY_AFTER);
        assert!(STORE_RETRY_AFTER.parse::<u64>().is_ok_and(|s| (1..=30).contains(&s)), "a few seconds");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/problem+json");
        let body = axum::body::to_bytes(response.into_body(), 4096).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["status"], 503);
        assert_eq!(body["type"], "/problems/unavailable");
        let text = body.to_string();
        assert!(text.contains("same Idempotency-Key"), "{text}");
        assert!(!text.contains("postgres") && !text.contains("pool"), "the database's words stay in the log: {text}");
    }
}
