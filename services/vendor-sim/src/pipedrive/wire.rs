//! The JSON Pipedrive sends and accepts: the `{"success", "data"}` envelope, users and deals as
//! shown, pages, errors, the rate-limit headers, and typed reading of request fields.
//!
//! These types are deliberately NOT shared with the client in `shared/vendors`: the simulator
//! writes Pipedrive's API down a second time, from the vendor's documentation (docs/vendors/pipedrive.md), so that a misunderstanding
//! of it written once cannot pass both sides' tests.

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Map, Number, Value};

use super::model::{Deal, Holding, Role, User};
use super::State;
use crate::extract::{self, bearer, BodyError, MalformedQuery};
use crate::ratelimit::{Decision, RateLimitStyle};
use crate::token::Token;

pub(super) const COMPANY_ID: i64 = 100;
pub(super) const COMPANY_NAME: &str = "Sim Company";
pub(super) const COMPANY_DOMAIN: &str = "sim";
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 500;
const ERROR_INFO: &str = "Please check developers.pipedrive.com for more information about Pipedrive API.";

/// The query string; a malformed one is a Pipedrive-shaped 400.
pub(super) type Params = extract::Params<ApiError>;

// ---------------------------------------------------------------------------------------------
// Errors and the envelope

/// A Pipedrive error response: `{"success":false,"error":..,"errorCode":..,"error_info":..}`.
#[derive(Debug)]
pub(super) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) error: String,
    /// 401/403/429 bodies carry no `error_info`.
    pub(super) with_info: bool,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, error: impl Into<String>) -> Self {
        ApiError { status, error: error.into(), with_info: true }
    }

    pub(super) fn bad_request(error: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, error)
    }

    pub(super) fn not_found(error: impl Into<String>) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, error)
    }

    pub(super) fn unauthorized() -> Self {
        ApiError { status: StatusCode::UNAUTHORIZED, error: "unauthorized access".into(), with_info: false }
    }

    pub(super) fn forbidden(what: &str) -> Self {
        ApiError {
            status: StatusCode::FORBIDDEN,
            error: format!("You do not have permissions to {what}"),
            with_info: false,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "success": false,
            "error": self.error,
            "errorCode": self.status.as_u16(),
        });
        if self.with_info {
            body["error_info"] = ERROR_INFO.into();
        }
        (self.status, Json(body)).into_response()
    }
}

pub(super) type ApiResult = Result<Response, ApiError>;

pub(super) fn ok<T: Serialize>(data: T) -> Response {
    Json(DataEnvelope { success: true, data }).into_response()
}

#[derive(Serialize)]
pub(super) struct DataEnvelope<T> {
    pub(super) success: bool,
    pub(super) data: T,
}

impl From<MalformedQuery> for ApiError {
    fn from(_: MalformedQuery) -> Self {
        ApiError::bad_request("malformed query string")
    }
}

/// Pipedrive reads an empty body as `{}` (see [`extract::Empty`]).
impl From<BodyError> for ApiError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::NotAnObject => ApiError::bad_request("request body must be a JSON object"),
            BodyError::Malformed => ApiError::bad_request("malformed JSON in request body"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Users, roles and deals as shown

/// A user as the API shows it (tokens are never shown).
#[derive(Serialize)]
pub(super) struct UserOut<'a> {
    pub(super) id: i64,
    pub(super) name: &'a str,
    pub(super) email: &'a str,
    pub(super) phone: Option<&'a str>,
    pub(super) active_flag: bool,
    pub(super) is_admin: u8,
    pub(super) role_id: Option<i64>,
    pub(super) created: &'a str,
    pub(super) modified: &'a str,
    pub(super) last_login: Option<&'a str>,
    pub(super) timezone_name: &'a str,
    pub(super) locale: &'a str,
    pub(super) default_currency: &'a str,
    pub(super) icon_url: Option<&'a str>,
    pub(super) has_created_company: bool,
}

/// A deal as the API shows it: `user_id` is an object here, unlike in requests.
#[derive(Serialize)]
pub(super) struct DealOut<'a> {
    pub(super) id: i64,
    pub(super) title: &'a str,
    pub(super) value: &'a Number,
    pub(super) currency: &'a str,
    pub(super) status: &'static str,
    pub(super) user_id: OwnerOut<'a>,
    pub(super) owner_name: Option<&'a str>,
    pub(super) add_time: &'a str,
    pub(super) update_time: &'a str,
}

#[derive(Serialize)]
pub(super) struct OwnerOut<'a> {
    pub(super) id: i64,
    pub(super) name: Option<&'a str>,
    pub(super) email: Option<&'a str>,
    pub(super) has_pic: u8,
    pub(super) pic_hash: Option<&'a str>,
    pub(super) active_flag: bool,
    pub(super) value: i64,
}

impl State {
    pub(super) fn user_out<'a>(&self, u: &'a User) -> UserOut<'a> {
        UserOut {
            id: u.id,
            name: &u.name,
            email: &u.email,
            phone: u.phone.as_deref(),
            active_flag: u.active,
            is_admin: u8::from(u.is_admin),
            role_id: u.role.map(|h| h.role_id),
            created: &u.created,
            modified: &u.modified,
            last_login: None,
            timezone_name: &u.timezone_name,
            locale: &u.locale,
            default_currency: &u.default_currency,
            icon_url: None,
            has_created_company: u.has_created_company,
        }
    }

    pub(super) fn user_json(&self, u: &User) -> Value {
        serde_json::to_value(self.user_out(u)).unwrap_or_default()
    }

    pub(super) fn role_json(&self, r: &Role) -> Value {
        json!({
            "id": r.id,
            "name": r.name,
            "parent_role_id": r.parent_role_id,
            "active_flag": true,
            "assignment_count": self.assignment_count(r.id),
        })
    }

    pub(super) fn deal_out<'a>(&'a self, d: &'a Deal) -> DealOut<'a> {
        let owner = self.users.get(&d.owner);
        DealOut {
            id: d.id,
            title: &d.title,
            value: &d.value,
            currency: &d.currency,
            status: d.status.as_str(),
            user_id: OwnerOut {
                id: d.owner,
                name: owner.map(|u| u.name.as_str()),
                email: owner.map(|u| u.email.as_str()),
                has_pic: 0,
                pic_hash: None,
                active_flag: owner.is_some_and(|u| u.active),
                value: d.owner,
            },
            owner_name: owner.map(|u| u.name.as_str()),
            add_time: &d.add_time,
            update_time: &d.update_time,
        }
    }

    pub(super) fn deal_json(&self, d: &Deal) -> Value {
        serde_json::to_value(self.deal_out(d)).unwrap_or_default()
    }
}

pub(super) fn assignment_json(user_id: i64, h: Holding) -> Value {
    json!({
        "id": h.assignment_id,
        "role_id": h.role_id,
        "user_id": user_id,
        "active_flag": true,
    })
}

/// Which permission flags a user has, by tier: everyone, role holders, admins.
pub(super) const PERMISSIONS: &[(&str, Tier)] = &[
    ("can_add_products", Tier::RoleHolder),
    ("can_bulk_edit_items", Tier::Admin),
    ("can_change_visibility_of_items", Tier::RoleHolder),
    ("can_delete_activities", Tier::Everyone),
    ("can_delete_deals", Tier::RoleHolder),
    ("can_edit_deals_closed_date", Tier::Admin),
    ("can_edit_products", Tier::Admin),
    ("can_export_data_from_lists", Tier::RoleHolder),
    ("can_follow_other_users", Tier::RoleHolder),
    ("can_merge_deals", Tier::RoleHolder),
    ("can_merge_organizations", Tier::Admin),
    ("can_merge_people", Tier::Admin),
    ("can_modify_labels", Tier::Admin),
    ("can_see_company_wide_statistics", Tier::Admin),
    ("can_see_deals_list_summary", Tier::Everyone),
    ("can_see_hidden_users_and_teams", Tier::Admin),
    ("can_see_other_users", Tier::RoleHolder),
    ("can_see_other_users_statistics", Tier::RoleHolder),
    ("can_share_filters", Tier::RoleHolder),
    ("can_use_api", Tier::Everyone),
    ("can_use_email_tracking", Tier::Everyone),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Tier {
    Everyone,
    RoleHolder,
    Admin,
}

pub(super) fn permissions(user: &User) -> Value {
    let tier = if user.is_admin {
        Tier::Admin
    } else if user.role.is_some() {
        Tier::RoleHolder
    } else {
        Tier::Everyone
    };
    let map: Map<String, Value> =
        PERMISSIONS.iter().map(|(name, needed)| ((*name).to_owned(), Value::Bool(tier >= *needed))).collect();
    Value::Object(map)
}

// ---------------------------------------------------------------------------------------------
// Reading requests

/// The caller's token: `api_token` query parameter first, then `Authorization: Bearer`.
pub(super) fn request_token(uri: &Uri, headers: &HeaderMap) -> Option<Token> {
    if let Some(t) = Params::from_uri(uri).and_then(|p| p.get("api_token").map(Token::from)) {
        return Some(t);
    }
    bearer(headers)
}

pub(super) fn parse_id(raw: &str, what: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad_request(format!("invalid {what} id {raw:?}")))
}

pub(super) fn flag_value(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) if n.as_i64() == Some(0) => Some(false),
        Value::Number(n) if n.as_i64() == Some(1) => Some(true),
        _ => None,
    }
}

/// Typed access to body fields; `null` counts as absent. Wrong types are 400s naming the field.
pub(super) struct Fields<'a>(pub(super) &'a Map<String, Value>);

impl Fields<'_> {
    pub(super) fn present(&self, key: &str) -> Option<&Value> {
        self.0.get(key).filter(|v| !v.is_null())
    }

    pub(super) fn string(&self, key: &str) -> Result<Option<String>, ApiError> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ApiError::bad_request(format!("{key} must be a string"))),
        }
    }

    pub(super) fn flag(&self, key: &str) -> Result<Option<bool>, ApiError> {
        self.present(key)
            .map(|v| flag_value(v).ok_or_else(|| ApiError::bad_request(format!("{key} must be a boolean"))))
            .transpose()
    }

    pub(super) fn id(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.present(key)
            .map(|v| {
                v.as_i64()
                    .filter(|id| *id > 0)
                    .ok_or_else(|| ApiError::bad_request(format!("{key} must be a positive integer")))
            })
            .transpose()
    }

    /// `Some(None)` when the field is explicitly `null`.
    pub(super) fn nullable_id(&self, key: &str) -> Result<Option<Option<i64>>, ApiError> {
        match self.0.get(key) {
            None => Ok(None),
            Some(Value::Null) => Ok(Some(None)),
            Some(_) => self.id(key).map(Some),
        }
    }

    pub(super) fn number(&self, key: &str) -> Result<Option<Number>, ApiError> {
        match self.present(key) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(Some(n.clone())),
            Some(_) => Err(ApiError::bad_request(format!("{key} must be a number"))),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Pagination

#[derive(Clone, Copy, Debug)]
pub(super) struct PageReq {
    pub(super) start: usize,
    pub(super) limit: usize,
}

impl PageReq {
    pub(super) fn parse(params: &Params) -> Result<Self, ApiError> {
        let start = match params.get("start") {
            None | Some("") => 0,
            Some(s) => s.parse::<usize>().map_err(|_| ApiError::bad_request("start must be a non-negative integer"))?,
        };
        let limit = match params.get("limit") {
            None | Some("") => DEFAULT_LIMIT,
            Some(s) => s
                .parse::<usize>()
                .ok()
                .filter(|l| *l >= 1)
                .ok_or_else(|| ApiError::bad_request("limit must be a positive integer"))?
                .min(MAX_LIMIT),
        };
        Ok(PageReq { start, limit })
    }

    /// The page of `items`, rendered, in the list envelope.
    pub(super) fn respond<T, O: Serialize>(self, items: &[T], render: impl Fn(&T) -> O) -> Response {
        let page: Vec<O> = items.iter().skip(self.start).take(self.limit).map(render).collect();
        let more = self.start.saturating_add(page.len()) < items.len();
        let next_start = more.then_some(self.start + page.len());
        Json(ListEnvelope {
            success: true,
            // Quirk: an empty page is `"data": null`.
            data: (!page.is_empty()).then_some(page),
            additional_data: AdditionalData {
                pagination: Pagination {
                    start: self.start,
                    limit: self.limit,
                    more_items_in_collection: more,
                    next_start,
                },
            },
        })
        .into_response()
    }
}

#[derive(Serialize)]
pub(super) struct ListEnvelope<T> {
    pub(super) success: bool,
    pub(super) data: Option<Vec<T>>,
    pub(super) additional_data: AdditionalData,
}

#[derive(Serialize)]
pub(super) struct AdditionalData {
    pub(super) pagination: Pagination,
}

#[derive(Serialize)]
pub(super) struct Pagination {
    pub(super) start: usize,
    pub(super) limit: usize,
    pub(super) more_items_in_collection: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) next_start: Option<usize>,
}

// ---------------------------------------------------------------------------------------------
// Rate limits

/// How Pipedrive renders rate-limit decisions.
pub struct PipedriveLimits;

impl RateLimitStyle for PipedriveLimits {
    fn headers(d: &Decision, _now_ms: i64, headers: &mut HeaderMap) {
        headers.insert("x-ratelimit-limit", HeaderValue::from(d.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(d.remaining));
        headers.insert("x-ratelimit-reset", HeaderValue::from(d.reset_at_secs()));
        if let Some(left) = d.daily_remaining {
            headers.insert("x-daily-requests-left", HeaderValue::from(left));
        }
    }

    fn rejection(d: &Decision, now_ms: i64) -> Response {
        let mut response =
            ApiError { status: StatusCode::TOO_MANY_REQUESTS, error: "Rate limit exceeded".into(), with_info: false }
                .into_response();
        Self::headers(d, now_ms, response.headers_mut());
        response
    }
}

#[cfg(test)]
mod tests {
    use super::super::ADMIN_USER_ID;
    use super::*;
    use crate::registry::VendorSim;
    use crate::{Config, Fixture};

    #[test]
    fn permissions_follow_admin_then_role() {
        let s = State::new(&Config::default(), Fixture::Default);
        let admin = &s.users[&ADMIN_USER_ID];
        assert_eq!(permissions(admin)["can_modify_labels"], true);
        let mut nobody = admin.clone();
        nobody.is_admin = false;
        assert_eq!(permissions(&nobody)["can_see_other_users"], false);
        assert_eq!(permissions(&nobody)["can_use_api"], true);
        nobody.role = Some(Holding { assignment_id: 1, role_id: 1 });
        assert_eq!(permissions(&nobody)["can_see_other_users"], true);
    }
}
