//! Errors as `application/problem+json` (RFC 9457), naming each bad field.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lifecycle_domain::FieldError;
use serde::Serialize;

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
