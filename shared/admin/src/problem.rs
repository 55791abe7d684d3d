//! Errors of the admin API as `application/problem+json` (RFC 9457), the
//! same shape as the intake's.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use lifecycle_domain::event::FieldError;
use lifecycle_ops::OpsError;
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    kind: String,
    title: String,
    status: u16,
    detail: String,
    /// Each bad field of a body, as the intake names them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    errors: Vec<FieldError>,
}

impl Problem {
    pub fn new(status: StatusCode, slug: &str, detail: impl Into<String>) -> Self {
        Problem {
            kind: format!("/problems/{slug}"),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    pub fn with_errors(mut self, errors: Vec<FieldError>) -> Self {
        self.errors = errors;
        self
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn detail(&self) -> &str {
        &self.detail
    }

    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }
}

/// What an operation's failure means over HTTP: 404 not found, 409 refused
/// (the run's state or a later run forbids it), 400 a bad request, 503 the
/// database (try again).
impl From<OpsError> for Problem {
    fn from(e: OpsError) -> Self {
        match e {
            OpsError::NotFound(m) => Problem::new(StatusCode::NOT_FOUND, "not-found", m),
            OpsError::Refused(m) => Problem::new(StatusCode::CONFLICT, "refused", m),
            OpsError::Forbidden(m) => Problem::new(StatusCode::FORBIDDEN, "forbidden", m),
            OpsError::Invalid(m) => Problem::new(StatusCode::BAD_REQUEST, "invalid-request", m),
            OpsError::Vendor(m) => Problem::new(StatusCode::BAD_GATEWAY, "vendor-unavailable", m),
            OpsError::Store(e) => {
                tracing::error!(error = %e, "admin request failed on the database");
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "database", "the database failed; try again")
            }
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self).expect("a problem always serializes");
        let mut res = (self.status(), body).into_response();
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        res
    }
}
