//! The JSON CrowdStrike sends and accepts: the `{"meta", "resources", "errors"}` envelope, the
//! entities (`domain.User`, user-role grants), each operation's query parameters and body
//! fields with the checks Falcon applies to them, the FQL filters we play, and the rate-limit
//! headers.
//!
//! Written from Falcon's published definition of the user-management API (FalconPy 1.6.2's
//! endpoint table `_endpoint/_user_management.py` and gofalcon's models; see
//! docs/vendors/crowdstrike.md), deliberately NOT shared with the client in `shared/vendors`,
//! so that a misreading written once cannot pass both sides' tests.

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::model::{Role, User};
use super::CUSTOMER_ID;
use crate::extract::{self, BodyError, MalformedQuery};
use crate::ratelimit::{Decision, RateLimitStyle};

/// `limit`'s default and maximum on the query operations (`[1-500]`).
pub(super) const DEFAULT_LIMIT: usize = 100;
pub(super) const MAX_LIMIT: usize = 500;
/// "Maximum of 5000 User UUIDs can be specified per request" (retrieveUsersGETV1).
pub(super) const MAX_IDS: usize = 5000;

/// The query string; a malformed one is a Falcon-shaped 400.
pub(super) type Params = extract::Params<ApiError>;

// ---------------------------------------------------------------------------------------------
// Query parameters, as each operation declares them

/// A declared parameter's type (swagger `type`, `minimum`/`maximum`, `enum`).
#[derive(Clone, Copy)]
pub(super) enum Kind {
    Str,
    Bool,
    Int { min: i64, max: Option<i64> },
    OneOf(&'static [&'static str]),
}

/// One declared query parameter. None of the operations we play declares a repeated one.
pub(super) struct Param {
    pub(super) name: &'static str,
    pub(super) kind: Kind,
    pub(super) required: bool,
}

const fn p(name: &'static str, kind: Kind) -> Param {
    Param { name, kind, required: false }
}

const fn required(name: &'static str, kind: Kind) -> Param {
    Param { name, kind, required: true }
}

const OFFSET: Kind = Kind::Int { min: 0, max: None };
const LIMIT: Kind = Kind::Int { min: 1, max: Some(MAX_LIMIT as i64) };

const USER_SORTS: &[&str] = &[
    "cid_name",
    "cid_name|asc",
    "cid_name|desc",
    "created_at",
    "created_at|asc",
    "created_at|desc",
    "first_name",
    "first_name|asc",
    "first_name|desc",
    "has_temporary_roles",
    "has_temporary_roles|asc",
    "has_temporary_roles|desc",
    "last_login_at",
    "last_login_at|asc",
    "last_login_at|desc",
    "last_name",
    "last_name|asc",
    "last_name|desc",
    "name",
    "name|asc",
    "name|desc",
    "status",
    "status|asc",
    "status|desc",
    "temporarily_assigned_cids",
    "temporarily_assigned_cids|asc",
    "temporarily_assigned_cids|desc",
    "uid",
    "uid|asc",
    "uid|desc",
];

const GRANT_SORTS: &[&str] = &[
    "cid",
    "cid|asc",
    "cid|desc",
    "expires_at",
    "expires_at|asc",
    "expires_at|desc",
    "role_name",
    "role_name|asc",
    "role_name|desc",
    "type",
    "type|asc",
    "type|desc",
    "user_uuid",
    "user_uuid|asc",
    "user_uuid|desc",
];

/// queryUserV1 `GET /user-management/queries/users/v1`.
pub(super) const QUERY_USER_V1: &[Param] =
    &[p("filter", Kind::Str), p("offset", OFFSET), p("limit", LIMIT), p("sort", Kind::OneOf(USER_SORTS))];
/// createUserV1 `POST /user-management/entities/users/v1`.
pub(super) const CREATE_USER_V1: &[Param] = &[p("validate_only", Kind::Bool)];
/// updateUserV1 `PATCH` and deleteUserV1 `DELETE /user-management/entities/users/v1`.
pub(super) const USER_UUID_ONLY: &[Param] = &[required("user_uuid", Kind::Str)];
/// queriesRolesV1 `GET /user-management/queries/roles/v1`.
pub(super) const QUERIES_ROLES_V1: &[Param] = &[p("cid", Kind::Str), p("user_uuid", Kind::Str), p("action", Kind::Str)];
/// CombinedUserRolesV2 `GET /user-management/combined/user-roles/v2`.
pub(super) const COMBINED_USER_ROLES_V2: &[Param] = &[
    required("user_uuid", Kind::Str),
    p("cid", Kind::Str),
    p("direct_only", Kind::Bool),
    p("filter", Kind::Str),
    p("offset", OFFSET),
    p("limit", LIMIT),
    p("sort", Kind::OneOf(GRANT_SORTS)),
];
/// retrieveUsersGETV1 and userRolesActionV1: a body, no query parameters.
pub(super) const NONE: &[Param] = &[];

impl Params {
    /// Refuses what `declared` does not allow: an unknown or repeated parameter, a missing
    /// required one, a value of the wrong type or out of range (400, as Falcon answers).
    pub(super) fn declared(&self, declared: &[Param]) -> Result<(), ApiError> {
        for (key, value) in self.pairs() {
            let Some(param) = declared.iter().find(|d| d.name == key) else {
                let known: Vec<&str> = declared.iter().map(|d| d.name).collect();
                let known = if known.is_empty() { "none".to_owned() } else { known.join(", ") };
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {key:?} (this operation takes: {known})"
                )));
            };
            if self.all(key).len() > 1 {
                return Err(ApiError::bad_request(format!("{key} may be given once")));
            }
            check_kind(param, value)?;
        }
        for param in declared.iter().filter(|d| d.required) {
            if self.get(param.name).is_none_or(|v| v.trim().is_empty()) {
                return Err(ApiError::bad_request(format!("{} is a required query parameter", param.name)));
            }
        }
        Ok(())
    }

    /// An integer parameter already [`declared`](Params::declared), or its default.
    pub(super) fn int(&self, key: &str, default: usize) -> usize {
        self.get(key).and_then(|v| v.parse().ok()).unwrap_or(default)
    }

    /// A boolean parameter already [`declared`](Params::declared), or `false`.
    pub(super) fn flag(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// A string parameter, trimmed; `None` when absent or empty.
    pub(super) fn text(&self, key: &str) -> Option<String> {
        self.get(key).map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned)
    }
}

fn check_kind(param: &Param, value: &str) -> Result<(), ApiError> {
    let name = param.name;
    match param.kind {
        Kind::Str => Ok(()),
        Kind::Bool if value.eq_ignore_ascii_case("true") || value.eq_ignore_ascii_case("false") => Ok(()),
        Kind::Bool => Err(ApiError::bad_request(format!("{name} must be a boolean (true or false), not {value:?}"))),
        Kind::Int { min, max } => {
            let n: i64 = value
                .parse()
                .map_err(|_| ApiError::bad_request(format!("{name} must be an integer, not {value:?}")))?;
            match max {
                _ if n < min => Err(ApiError::bad_request(format!("{name} must be at least {min}"))),
                Some(max) if n > max => {
                    Err(ApiError::bad_request(format!("{name} must be between {min} and {max}, not {n}")))
                }
                _ => Ok(()),
            }
        }
        Kind::OneOf(allowed) if allowed.contains(&value) => Ok(()),
        Kind::OneOf(_) => Err(ApiError::bad_request(format!("{name}: {value:?} is not a sort this operation offers"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Bodies, as each operation's model declares them

/// A declared body field's JSON type.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum FieldKind {
    Str,
    StrArray,
}

/// (name, type) of every field the model has.
pub(super) type Fields = &'static [(&'static str, FieldKind)];

/// domain.CreateUserRequest (createUserV1).
pub(super) const CREATE_USER_REQUEST: Fields = &[
    ("cid", FieldKind::Str),
    ("first_name", FieldKind::Str),
    ("last_name", FieldKind::Str),
    ("password", FieldKind::Str),
    ("uid", FieldKind::Str),
];
/// domain.UpdateUserRequest (updateUserV1).
pub(super) const UPDATE_USER_REQUEST: Fields = &[("first_name", FieldKind::Str), ("last_name", FieldKind::Str)];
/// msaspec.IdsRequest (retrieveUsersGETV1).
pub(super) const IDS_REQUEST: Fields = &[("ids", FieldKind::StrArray)];
/// flightcontrolapi.grantInput (userRolesActionV1).
pub(super) const GRANT_INPUT: Fields = &[
    ("action", FieldKind::Str),
    ("cid", FieldKind::Str),
    ("expires_at", FieldKind::Str),
    ("role_ids", FieldKind::StrArray),
    ("uuid", FieldKind::Str),
];

/// The body as a JSON object whose every field is one of `fields`, of its type (`null` counts
/// as absent); anything else is a 400 naming the field.
pub(super) fn body_of(body: &Bytes, fields: Fields) -> Result<Map<String, Value>, ApiError> {
    let obj = extract::json_object(body, extract::Empty::IsMalformed)?;
    for (key, value) in &obj {
        let Some((_, kind)) = fields.iter().find(|(name, _)| name == key) else {
            let known: Vec<&str> = fields.iter().map(|(n, _)| *n).collect();
            return Err(ApiError::bad_request(format!(
                "unknown field {key:?} in the request body (the model has: {})",
                known.join(", ")
            )));
        };
        let fits = match (kind, value) {
            (_, Value::Null) => true,
            (FieldKind::Str, Value::String(_)) => true,
            (FieldKind::StrArray, Value::Array(items)) => items.iter().all(Value::is_string),
            _ => false,
        };
        if !fits {
            let want = if *kind == FieldKind::Str { "a string" } else { "an array of strings" };
            return Err(ApiError::bad_request(format!("{key} must be {want}")));
        }
    }
    Ok(obj)
}

/// A string field of a body [`body_of`] accepted, trimmed; `None` when absent, null or empty.
pub(super) fn text(obj: &Map<String, Value>, key: &str) -> Option<String> {
    obj.get(key).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// A string-array field of a body [`body_of`] accepted.
pub(super) fn strings(obj: &Map<String, Value>, key: &str) -> Option<Vec<String>> {
    obj.get(key)?.as_array().map(|items| items.iter().filter_map(Value::as_str).map(str::to_owned).collect())
}

/// A body that must be empty (the operation declares none).
pub(super) fn no_body(body: &[u8]) -> Result<(), ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        Ok(())
    } else {
        Err(ApiError::bad_request("this operation takes no request body"))
    }
}

/// A `cid` the caller named: this tenant's, or a 400 (the simulator plays one CID and no
/// Flight Control children).
pub(super) fn own_cid(cid: Option<&str>) -> Result<(), ApiError> {
    match cid {
        Some(c) if !c.eq_ignore_ascii_case(CUSTOMER_ID) => {
            Err(ApiError::bad_request(format!("cid {c} is not a customer this API client can act in")))
        }
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------------------------
// FQL filters

/// A filter of `field:'value'` terms joined by `+` (all must hold). Values are single-quoted
/// with `\'` and `\\` escaped. `playable` are the fields the simulator evaluates; `declared`
/// the fields the operation's definition lists (a declared field the simulator does not play
/// is refused saying so, never ignored).
pub(super) fn fql(filter: &str, declared: &[&str], playable: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let invalid = |why: &str| ApiError::bad_request(format!("invalid filter {filter:?}: {why}"));
    let mut terms = Vec::new();
    let mut rest = filter.trim();
    while !rest.is_empty() {
        let (field, after) = rest.split_once(':').ok_or_else(|| invalid("expected field:'value'"))?;
        let field = field.trim();
        let after = after.trim_start();
        let Some(quoted) = after.strip_prefix('\'') else {
            return Err(invalid("values are single-quoted strings"));
        };
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, e)) => value.push(e),
                    None => break,
                },
                '\'' => {
                    end = Some(i + 1);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end.ok_or_else(|| invalid("unterminated quote"))?;
        if !declared.contains(&field) {
            return Err(ApiError::bad_request(format!(
                "invalid filter: {field:?} is not a supported filter (supported: {})",
                declared.join(", ")
            )));
        }
        if !playable.contains(&field) {
            return Err(ApiError::bad_request(format!("the simulator does not play filters on {field}")));
        }
        terms.push((field.to_owned(), value));
        rest = quoted[end..].trim_start();
        if let Some(more) = rest.strip_prefix('+') {
            rest = more.trim_start();
            if rest.is_empty() {
                return Err(invalid("a term must follow +"));
            }
        } else if !rest.is_empty() {
            return Err(invalid("terms are joined with +"));
        }
    }
    Ok(terms)
}

/// queryUserV1's declared filters, and those the simulator evaluates.
pub(super) const USER_FILTERS: &[&str] = &[
    "assigned_cids",
    "cid",
    "direct_assigned_cids",
    "factors",
    "first_name",
    "has_temporary_roles",
    "last_name",
    "name",
    "status",
    "temporarily_assigned_cids",
    "uid",
    "uuid",
];
pub(super) const USER_FILTERS_PLAYED: &[&str] = &["cid", "first_name", "last_name", "name", "status", "uid", "uuid"];
/// CombinedUserRolesV2's declared filters, and those the simulator evaluates.
pub(super) const GRANT_FILTERS: &[&str] = &["expires_at", "role_id", "role_name"];
pub(super) const GRANT_FILTERS_PLAYED: &[&str] = &["role_id", "role_name"];

// ---------------------------------------------------------------------------------------------
// Envelope and errors

/// `msa.MetaInfo`: `query_time` and `trace_id` required, `powered_by`, `pagination` optional.
pub(super) fn meta(pagination: Option<(usize, usize, usize)>) -> Value {
    let mut m = Map::new();
    m.insert("query_time".into(), json!(0.003));
    m.insert("powered_by".into(), "user-management".into());
    m.insert("trace_id".into(), uuid::Uuid::new_v4().to_string().into());
    if let Some((offset, limit, total)) = pagination {
        m.insert("pagination".into(), json!({ "offset": offset, "limit": limit, "total": total }));
    }
    Value::Object(m)
}

/// A Falcon error (`msa.ReplyMetaOnly`): `{"meta": {...}, "errors": [{"code", "message"}]}`.
#[derive(Debug)]
pub(super) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) errors: Vec<Value>,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, errors: vec![json!({ "code": status.as_u16(), "message": message.into() })] }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub(super) fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }

    pub(super) fn unauthorized() -> Self {
        ApiError::new(StatusCode::UNAUTHORIZED, "access denied, invalid bearer token")
    }

    pub(super) fn forbidden() -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "access denied, authorization failed")
    }

    pub(super) fn token_refused() -> Self {
        ApiError::new(StatusCode::FORBIDDEN, "Failed to issue access token - Not Authorized")
    }

    pub(super) fn message(&self) -> String {
        self.errors.iter().filter_map(|e| e["message"].as_str()).collect::<Vec<_>>().join("; ")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "meta": meta(None), "errors": self.errors }))).into_response()
    }
}

pub(super) type ApiResult = Result<Response, ApiError>;

/// `{"meta", "resources", "errors"}` (msaspec.QueryResponse, flightcontrolapi.UserResponse,
/// flightcontrolapi.CombinedUserRolesResponseV2).
pub(super) fn resources(
    status: StatusCode,
    items: Vec<Value>,
    pagination: Option<(usize, usize, usize)>,
    errors: Vec<Value>,
) -> Response {
    (status, Json(json!({ "meta": meta(pagination), "resources": items, "errors": errors }))).into_response()
}

/// `{"meta", "errors": []}` (msaspec.ResponseFields: deleteUserV1, userRolesActionV1).
pub(super) fn meta_only() -> Response {
    (StatusCode::OK, Json(json!({ "meta": meta(None), "errors": [] }))).into_response()
}

impl From<MalformedQuery> for ApiError {
    fn from(_: MalformedQuery) -> Self {
        ApiError::bad_request("malformed query string")
    }
}

/// An empty body is malformed here (see [`extract::Empty`]).
impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::NotAnObject => ApiError::bad_request("request body must be a JSON object"),
            BodyError::Malformed => ApiError::bad_request("malformed JSON in request body"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Entities as shown

/// A user as the API shows it (`domain.User`): `uuid` is the id, `uid` the login e-mail. No
/// roles: they are grants, read through CombinedUserRolesV2.
pub(super) fn user_json(u: &User) -> Value {
    json!({
        "uuid": u.uuid,
        "uid": u.username,
        "first_name": u.first_name,
        "last_name": u.last_name,
        "cid": CUSTOMER_ID,
        "status": "active",
        "factors": [],
        "created_at": u.created_at,
        "updated_at": u.updated_at,
    })
}

/// A user as `/_sim/state` and `/_sim/seed` show it: our control API's shape, kept from before
/// the simulator played the current API (`uid` is the id there, `username` the login); `uuid`
/// repeats the id under Falcon's name.
pub(super) fn state_user_json(u: &User) -> Value {
    json!({
        "uid": u.uuid,
        "uuid": u.uuid,
        "username": u.username,
        "first_name": u.first_name,
        "last_name": u.last_name,
        "customer_id": CUSTOMER_ID,
        "created_at": u.created_at,
        "updated_at": u.updated_at,
    })
}

/// One of a user's grants (`flightcontrolapi.CombinedUserRolesResourceV2`): all direct here.
pub(super) fn grant_json(u: &User, role: &str, role_name: &str) -> Value {
    json!({
        "cid": CUSTOMER_ID,
        "role_id": role,
        "role_name": role_name,
        "grant_type": "direct",
        "uuid": u.uuid,
    })
}

pub(super) fn role_json(r: &Role) -> Value {
    json!({
        "id": r.id,
        "display_name": r.display_name,
        "description": r.description,
        "cid": CUSTOMER_ID,
    })
}

// ---------------------------------------------------------------------------------------------
// Rate limits

/// How CrowdStrike renders rate-limit decisions.
pub struct FalconLimits;

impl RateLimitStyle for FalconLimits {
    fn headers(d: &Decision, _now_ms: i64, headers: &mut HeaderMap) {
        headers.insert("x-ratelimit-limit", HeaderValue::from(d.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(d.remaining));
    }

    fn rejection(d: &Decision, now_ms: i64) -> Response {
        let mut response = ApiError::new(StatusCode::TOO_MANY_REQUESTS, "API rate limit exceeded.").into_response();
        Self::headers(d, now_ms, response.headers_mut());
        // "Too many requests, retry after this time (as milliseconds since epoch)".
        response.headers_mut().insert("x-ratelimit-retryafter", HeaderValue::from(d.retry_at_ms));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_milliseconds_since_the_epoch() {
        let d = Decision {
            allowed: false,
            limit: 10,
            remaining: 0,
            reset_at_ms: 1_700_000_060_000,
            daily_limit: None,
            daily_remaining: None,
            retry_at_ms: 1_700_000_060_001,
        };
        let r = FalconLimits::rejection(&d, 1_700_000_000_000);
        assert_eq!(r.headers()["x-ratelimit-retryafter"], "1700000060001");
        assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    }

    #[test]
    fn fql_reads_quoted_terms_and_refuses_the_rest() {
        let f = |s: &str| fql(s, USER_FILTERS, USER_FILTERS_PLAYED);
        assert_eq!(f("uid:'ada@example.com'").unwrap(), [("uid".to_owned(), "ada@example.com".to_owned())]);
        assert_eq!(f(r"uid:'o\'brien@example.com'").unwrap()[0].1, "o'brien@example.com");
        assert_eq!(f("uid:'a+b@example.com'+status:'active'").unwrap().len(), 2);
        assert!(f("uid:ada@example.com").is_err(), "unquoted");
        assert!(f("uid:'ada").is_err(), "unterminated");
        assert!(f("username:'ada@example.com'").unwrap_err().message().contains("not a supported filter"));
        assert!(f("factors:'x'").unwrap_err().message().contains("does not play"));
        assert!(f("uid:'a'+").is_err());
    }

    #[test]
    fn parameters_are_checked_against_the_declaration() {
        let q = |s: &str| Params::from_uri(&format!("/x?{s}").parse().unwrap()).unwrap();
        assert!(q("limit=500&offset=0&sort=uid|asc").declared(QUERY_USER_V1).is_ok());
        for bad in ["limit=501", "limit=0", "offset=-1", "limit=ten", "sort=username", "uid=a@b.c", "limit=1&limit=2"] {
            assert_eq!(q(bad).declared(QUERY_USER_V1).unwrap_err().status, StatusCode::BAD_REQUEST, "{bad}");
        }
        assert!(q("").declared(COMBINED_USER_ROLES_V2).unwrap_err().message().contains("user_uuid is a required"));
        assert!(q("user_uuid=u&direct_only=yes").declared(COMBINED_USER_ROLES_V2).is_err());
        assert!(q("user_uuid=u&direct_only=true").declared(COMBINED_USER_ROLES_V2).is_ok());
    }

    #[test]
    fn bodies_may_hold_only_the_models_fields() {
        let b = |s: &'static str| Bytes::from_static(s.as_bytes());
        assert!(body_of(&b(r#"{"uid":"a@b.c","first_name":"A","last_name":"B"}"#), CREATE_USER_REQUEST).is_ok());
        let e = body_of(&b(r#"{"uid":"a@b.c","firstName":"A"}"#), CREATE_USER_REQUEST).unwrap_err();
        assert!(e.message().contains("firstName"), "{}", e.message());
        assert!(body_of(&b(r#"{"ids":"u-1"}"#), IDS_REQUEST).is_err(), "wrong type");
        assert!(body_of(&b(r#"{"ids":[1]}"#), IDS_REQUEST).is_err(), "wrong item type");
    }
}
