//! SCIM 2.0 (RFC 7643, RFC 7644) as identity providers actually speak it
//! (docs/contract.md §6), and what a SCIM write means for lifecycle.
//!
//! Pure: parsing and validating resources, the filter grammar, PATCH
//! application (Okta's and Microsoft Entra's shapes included), the error and
//! list messages, the discovery documents, and [`mapping`] from a user and
//! their groups to joiner, mover and leaver events. The producer stores and
//! serves; nothing here does I/O.

pub mod body;
pub mod discovery;
pub mod error;
pub mod filter;
pub mod list;
pub mod mapping;
pub mod patch;
pub mod resource;

pub use error::{ScimError, ScimType};

/// `schemas` of a User.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// `schemas` of a Group.
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
/// The enterprise extension Entra and Okta send (employeeNumber, manager, ...).
pub const ENTERPRISE_USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// The media type of every answer (RFC 7644 §3.1); requests may also use `application/json`.
pub const MEDIA_TYPE: &str = "application/scim+json";

/// The weak ETag of a resource's version (RFC 7644 §3.14).
pub fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}
