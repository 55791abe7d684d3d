//! SCIM's error message (RFC 7644 §3.12): `status` as a string, `scimType`
//! for the 400s (and 409 `uniqueness`, 412 ...), `detail` for a person.

use serde_json::{json, Value};

/// The `scimType` values of RFC 7644 §3.12 that this server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimType {
    InvalidFilter,
    TooMany,
    Uniqueness,
    Mutability,
    InvalidSyntax,
    InvalidPath,
    NoTarget,
    InvalidValue,
    InvalidVers,
}

impl ScimType {
    pub fn as_str(self) -> &'static str {
        match self {
            ScimType::InvalidFilter => "invalidFilter",
            ScimType::TooMany => "tooMany",
            ScimType::Uniqueness => "uniqueness",
            ScimType::Mutability => "mutability",
            ScimType::InvalidSyntax => "invalidSyntax",
            ScimType::InvalidPath => "invalidPath",
            ScimType::NoTarget => "noTarget",
            ScimType::InvalidValue => "invalidValue",
            ScimType::InvalidVers => "invalidVers",
        }
    }
}

/// A refusal, as SCIM writes it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {}: {detail}", scim_type.map_or("", ScimType::as_str))]
pub struct ScimError {
    pub status: u16,
    pub scim_type: Option<ScimType>,
    pub detail: String,
}

impl ScimError {
    pub fn new(status: u16, scim_type: Option<ScimType>, detail: impl Into<String>) -> Self {
        Self { status, scim_type, detail: detail.into() }
    }
    pub fn bad(scim_type: ScimType, detail: impl Into<String>) -> Self {
        Self::new(400, Some(scim_type), detail)
    }
    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::bad(ScimType::InvalidFilter, detail)
    }
    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::bad(ScimType::InvalidValue, detail)
    }
    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::bad(ScimType::InvalidSyntax, detail)
    }
    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::bad(ScimType::InvalidPath, detail)
    }
    pub fn no_target(detail: impl Into<String>) -> Self {
        Self::bad(ScimType::NoTarget, detail)
    }
    pub fn uniqueness(detail: impl Into<String>) -> Self {
        Self::new(409, Some(ScimType::Uniqueness), detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, None, detail)
    }
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(401, None, detail)
    }
    pub fn precondition_failed(detail: impl Into<String>) -> Self {
        Self::new(412, None, detail)
    }

    /// The message body.
    pub fn to_json(&self) -> Value {
        let mut v = json!({
            "schemas": [crate::ERROR_SCHEMA],
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            v["scimType"] = json!(t.as_str());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_is_a_string_and_scim_type_is_named() {
        let e = ScimError::uniqueness("userName ada@example.com exists").to_json();
        assert_eq!(e["status"], "409");
        assert_eq!(e["scimType"], "uniqueness");
        assert_eq!(e["schemas"][0], crate::ERROR_SCHEMA);
        assert!(ScimError::not_found("x").to_json().get("scimType").is_none());
    }
}
