//! Pipedrive webhook payloads (docs/contract.md §2), versions 1 and 2, parsed into
//! what lifecycle acts on: which `user` changed, how, and a delivery identity.
//!
//! Pure and total: every byte string either parses or is refused with a
//! reason, so the receiver can answer at once and the fuzzer can hammer it.
//! Shapes follow Pipedrive's "Guide for Webhooks" (v1) and "Guide for
//! Webhooks v2" (see `tests/fixtures/pipedrive-webhooks/README.md`):
//!
//! - v1: `{"v":1, "event":"updated.user", "meta":{"action","object","id",
//!   "webhook_id","timestamp_micro",...}, "current":..., "previous":..., "retry":0}`;
//!   for `user` objects `current`/`previous` are one-element arrays.
//! - v2: `{"meta":{"action":"change","entity":"user","entity_id","id"
//!   (the event's id),"attempt","version":"2.0",...}, "data":..., "previous":...}`;
//!   `previous` holds only the fields that changed, `data` is null on delete.

use crate::email::EmployeeEmail;
use crate::event::FieldError;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// Deeper bodies are refused before decoding, with a reason that says so.
pub const MAX_NESTING: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookVersion {
    V1,
    V2,
}

/// What happened to the object, in lifecycle's words (v1 `added`/`updated`/
/// `merged`/`deleted`; v2 `create`/`change`/`delete`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookAction {
    Added,
    Updated,
    Deleted,
}

impl WebhookAction {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookAction::Added => "added",
            WebhookAction::Updated => "updated",
            WebhookAction::Deleted => "deleted",
        }
    }
}

/// The Pipedrive user a delivery is about, as far as the payload tells.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct WebhookUser {
    /// Pipedrive's numeric user id, as text (v2 sends ids as strings, v1 as numbers).
    pub id: String,
    pub email: Option<EmployeeEmail>,
    pub name: Option<String>,
    /// `active_flag` before the change, when the payload says.
    pub active_before: Option<bool>,
    /// `active_flag` after the change, when the payload says.
    pub active_after: Option<bool>,
}

/// A delivery about a `user` object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserChange {
    pub version: WebhookVersion,
    pub action: WebhookAction,
    /// Unique per delivery, identical for Pipedrive's retries of it: the
    /// events table's idempotency key (source `pipedrive_webhook`).
    pub delivery_key: String,
    pub user: WebhookUser,
    /// `app` or `api` (who made the change in Pipedrive), when given.
    pub change_source: Option<String>,
    /// Which delivery attempt this is (v1 `retry` + 1, v2 `attempt`).
    pub attempt: u32,
}

impl UserChange {
    /// Active before, inactive after: a deactivation.
    pub fn is_deactivation(&self) -> bool {
        self.action == WebhookAction::Updated
            && self.user.active_before == Some(true)
            && self.user.active_after == Some(false)
    }
}

/// A parsed delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Webhook {
    User(UserChange),
    /// Any other object (deal, person, ...), or an action we do not know on a
    /// user: acknowledged and ignored.
    Ignored {
        version: WebhookVersion,
        object: String,
        action: String,
    },
}

/// Why a body is not a Pipedrive webhook. Pipedrive retries a delivery we
/// refuse, which is right: a body we cannot read is not one it meant to send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the body is not valid JSON: {0}")]
    NotJson(String),
    #[error("the body must be a JSON object")]
    NotObject,
    #[error(
        "the body is neither a version 1 (v, event, current) nor a version 2 (meta.version, data) Pipedrive webhook"
    )]
    UnknownVersion,
    #[error("{field}: {problem}")]
    Field { field: &'static str, problem: &'static str },
    /// A key repeated in one object: readers disagree on which value counts.
    #[error("{field}: appears more than once in its object; a delivery names each key once")]
    DuplicateKey { field: String },
}

impl WebhookError {
    /// The field at fault, as the intake names fields, when there is one.
    pub fn field_error(&self) -> Option<FieldError> {
        match self {
            WebhookError::Field { field, problem } => Some(FieldError::new(field, problem)),
            WebhookError::DuplicateKey { field } => {
                Some(FieldError::new(field, "appears more than once in its object; send each key once"))
            }
            _ => None,
        }
    }
}

fn field(field: &'static str, problem: &'static str) -> WebhookError {
    WebhookError::Field { field, problem }
}

/// Parses a request body.
pub fn parse(body: &[u8]) -> Result<Webhook, WebhookError> {
    if json_depth_exceeds(body, MAX_NESTING) {
        return Err(WebhookError::NotJson(format!("nested deeper than {MAX_NESTING} levels")));
    }
    let value: Value = serde_json::from_slice(body).map_err(|e| WebhookError::NotJson(e.to_string()))?;
    if let Some(field) = crate::json::repeated_keys(body).into_iter().next() {
        return Err(WebhookError::DuplicateKey { field });
    }
    parse_value(&value)
}

/// Parses an already decoded body.
pub fn parse_value(value: &Value) -> Result<Webhook, WebhookError> {
    let obj = value.as_object().ok_or(WebhookError::NotObject)?;
    let meta = match obj.get("meta") {
        Some(Value::Object(m)) => Some(m),
        None | Some(Value::Null) => None,
        Some(_) => return Err(field("meta", "must be an object")),
    };
    match detect_version(obj, meta) {
        Some(WebhookVersion::V1) => parse_v1(obj, meta.ok_or(field("meta", "is required"))?),
        Some(WebhookVersion::V2) => parse_v2(obj, meta.ok_or(field("meta", "is required"))?),
        None => Err(WebhookError::UnknownVersion),
    }
}

/// v2 says so in `meta.version` ("2.0"); v1 in `v`/`meta.v` (1) or by its
/// `event`/`current` fields.
fn detect_version(obj: &Map<String, Value>, meta: Option<&Map<String, Value>>) -> Option<WebhookVersion> {
    let meta_version = meta.and_then(|m| m.get("version")).and_then(text);
    if let Some(v) = meta_version {
        return match v.split('.').next() {
            Some("2") => Some(WebhookVersion::V2),
            Some("1") => Some(WebhookVersion::V1),
            _ => None,
        };
    }
    let v = obj.get("v").or_else(|| meta.and_then(|m| m.get("v"))).and_then(Value::as_i64);
    match v {
        Some(1) => Some(WebhookVersion::V1),
        Some(2) => Some(WebhookVersion::V2),
        Some(_) => None,
        None if obj.contains_key("event") || obj.contains_key("current") => Some(WebhookVersion::V1),
        None if meta.is_some_and(|m| m.contains_key("entity")) => Some(WebhookVersion::V2),
        None => None,
    }
}

fn parse_v1(obj: &Map<String, Value>, meta: &Map<String, Value>) -> Result<Webhook, WebhookError> {
    // `event` is "<action>.<object>"; meta repeats both. Prefer meta, fall back to event.
    let event = match obj.get("event") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(field("event", "must be a string like updated.user")),
    };
    let (ev_action, ev_object) = match event.and_then(|e| e.split_once('.')) {
        Some((a, o)) => (Some(a), Some(o)),
        None => (None, None),
    };
    let action = opt_str(meta, "action", "meta.action")?.or(ev_action).ok_or(field("meta.action", "is required"))?;
    let object = opt_str(meta, "object", "meta.object")?.or(ev_object).ok_or(field("meta.object", "is required"))?;
    if object != "user" {
        return Ok(ignored(WebhookVersion::V1, object, action));
    }
    let action = match action {
        "added" => WebhookAction::Added,
        "updated" | "merged" => WebhookAction::Updated,
        "deleted" => WebhookAction::Deleted,
        other => return Ok(ignored(WebhookVersion::V1, "user", other)),
    };
    let current = v1_user_object(obj.get("current"), "current")?;
    let previous = v1_user_object(obj.get("previous"), "previous")?;
    let id = user_id(meta.get("id"), "meta.id")?
        .or(user_id_in(current, "current.id")?)
        .or(user_id_in(previous, "previous.id")?)
        .ok_or(field("meta.id", "is required (the user's id)"))?;
    let retry = match obj.get("retry") {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_u64().ok_or(field("retry", "must be a non-negative integer"))?,
    };
    let webhook_id = id_text(meta.get("webhook_id"), "meta.webhook_id")?.unwrap_or_default();
    // v1 carries no event id; a retry repeats meta exactly (only `retry` grows),
    // and the microsecond timestamp tells two changes of one user apart.
    let at = id_text(meta.get("timestamp_micro"), "meta.timestamp_micro")?
        .or(id_text(meta.get("timestamp"), "meta.timestamp")?)
        .ok_or(field("meta.timestamp_micro", "is required (with meta.timestamp, it identifies the delivery)"))?;
    let delivery_key = bounded_key("v1", &[&webhook_id, "user", &id, action.as_str(), &at]);
    Ok(Webhook::User(UserChange {
        version: WebhookVersion::V1,
        action,
        delivery_key,
        user: user(id, (current, "current"), (previous, "previous"))?,
        change_source: opt_str(meta, "change_source", "meta.change_source")?.map(str::to_string),
        attempt: u32::try_from(retry.saturating_add(1)).unwrap_or(u32::MAX),
    }))
}

fn parse_v2(obj: &Map<String, Value>, meta: &Map<String, Value>) -> Result<Webhook, WebhookError> {
    let action = opt_str(meta, "action", "meta.action")?.ok_or(field("meta.action", "is required"))?;
    let entity = opt_str(meta, "entity", "meta.entity")?.ok_or(field("meta.entity", "is required"))?;
    if entity != "user" {
        return Ok(ignored(WebhookVersion::V2, entity, action));
    }
    let action = match action {
        "create" => WebhookAction::Added,
        "change" => WebhookAction::Updated,
        "delete" => WebhookAction::Deleted,
        other => return Ok(ignored(WebhookVersion::V2, "user", other)),
    };
    let data = object_or_null(obj.get("data"), "data")?;
    let previous = object_or_null(obj.get("previous"), "previous")?;
    let id = user_id(meta.get("entity_id"), "meta.entity_id")?
        .or(user_id_in(data, "data.id")?)
        .or(user_id_in(previous, "previous.id")?)
        .ok_or(field("meta.entity_id", "is required (the user's id)"))?;
    let attempt = match meta.get("attempt") {
        None | Some(Value::Null) => 1,
        Some(v) => v.as_u64().ok_or(field("meta.attempt", "must be a positive integer"))?,
    };
    // v2's meta.id is the id of the event: retries repeat it, a new change gets a new one.
    let delivery_key = match id_text(meta.get("id"), "meta.id")? {
        Some(event_id) => bounded_key("v2", &[&event_id]),
        None => {
            let webhook_id = id_text(meta.get("webhook_id"), "meta.webhook_id")?.unwrap_or_default();
            let at = id_text(meta.get("timestamp"), "meta.timestamp")?
                .ok_or(field("meta.id", "is required (with meta.timestamp as fallback, it identifies the delivery)"))?;
            bounded_key("v2", &[&webhook_id, "user", &id, action.as_str(), &at])
        }
    };
    // On a change, `previous` has only the fields that changed; on a delete,
    // `data` is null and `previous` is the last state.
    let mut user = user(id, (data, "data"), (previous, "previous"))?;
    if action == WebhookAction::Updated && user.active_before.is_none() {
        if let Some(after) = user.active_after {
            // active_flag did not change: it was what it is now.
            user.active_before = Some(after);
        }
    }
    Ok(Webhook::User(UserChange {
        version: WebhookVersion::V2,
        action,
        delivery_key,
        user,
        change_source: opt_str(meta, "change_source", "meta.change_source")?.map(str::to_string),
        // Pipedrive counts from 1; a 0 (seen only from the fuzzer) is still the first attempt.
        attempt: u32::try_from(attempt.max(1)).unwrap_or(u32::MAX),
    }))
}

fn ignored(version: WebhookVersion, object: &str, action: &str) -> Webhook {
    // Bounded: these strings end up in logs and metrics labels.
    let clip = |s: &str| s.chars().filter(|c| !c.is_control()).take(64).collect::<String>();
    Webhook::Ignored { version, object: clip(object), action: clip(action) }
}

/// v1 user objects come as `[{...}]`; accept a bare object too.
fn v1_user_object<'a>(
    v: Option<&'a Value>,
    name: &'static str,
) -> Result<Option<&'a Map<String, Value>>, WebhookError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(Value::Array(items)) => match items.first() {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(o)) => Ok(Some(o)),
            Some(_) => Err(field(name, "must hold user objects")),
        },
        Some(_) => Err(field(name, "must be a user object or a list of them")),
    }
}

fn object_or_null<'a>(
    v: Option<&'a Value>,
    name: &'static str,
) -> Result<Option<&'a Map<String, Value>>, WebhookError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(field(name, "must be an object or null")),
    }
}

/// A user object, named as the payload names it (`data`, `current`, `previous`).
type Named<'a> = (Option<&'a Map<String, Value>>, &'static str);

fn user(id: String, (now, now_name): Named, (before, before_name): Named) -> Result<WebhookUser, WebhookError> {
    // The address and name as they are now, else as they were (a deleted user's last state).
    let email_raw = match now.and_then(|o| o.get("email")) {
        Some(Value::String(s)) => Some(s.as_str()),
        _ => before.and_then(|o| o.get("email")).and_then(Value::as_str),
    };
    let email = email_raw.and_then(|s| EmployeeEmail::parse(s).ok());
    let name = now
        .and_then(|o| o.get("name"))
        .and_then(Value::as_str)
        .or_else(|| before.and_then(|o| o.get("name")).and_then(Value::as_str))
        .map(|s| s.chars().filter(|c| !c.is_control() && !crate::text::is_format(*c)).take(255).collect::<String>())
        .filter(|s| !s.trim().is_empty());
    Ok(WebhookUser {
        id,
        email,
        name,
        active_before: active(before, active_field(before_name))?,
        active_after: active(now, active_field(now_name))?,
    })
}

/// `<object>.active_flag`, for the object's name in this version of the payload.
fn active_field(object: &str) -> &'static str {
    match object {
        "data" => "data.active_flag",
        "current" => "current.active_flag",
        _ => "previous.active_flag",
    }
}

fn active(o: Option<&Map<String, Value>>, name: &'static str) -> Result<Option<bool>, WebhookError> {
    match o.and_then(|o| o.get("active_flag")) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        // Older payloads sometimes carry flags as 0/1.
        Some(Value::Number(n)) if n.as_u64() == Some(0) => Ok(Some(false)),
        Some(Value::Number(n)) if n.as_u64() == Some(1) => Ok(Some(true)),
        Some(_) => Err(field(name, "must be a boolean")),
    }
}

fn opt_str<'a>(o: &'a Map<String, Value>, key: &str, name: &'static str) -> Result<Option<&'a str>, WebhookError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(field(name, "must be a string")),
    }
}

fn text(v: &Value) -> Option<&str> {
    v.as_str()
}

/// A Pipedrive user id: a positive integer, sent as a number (v1) or as a
/// string of digits (v2). Anything else cannot name a Pipedrive user, and a
/// delivery about no one must not start a run or record drift.
fn user_id(v: Option<&Value>, name: &'static str) -> Result<Option<String>, WebhookError> {
    const PROBLEM: &str = "must be a Pipedrive user id: a positive integer, as a number or a string of digits";
    let id = match v {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse::<i64>().ok()
        }
        Some(_) => None,
    };
    match id {
        Some(id) if id > 0 => Ok(Some(id.to_string())),
        _ => Err(field(name, PROBLEM)),
    }
}

fn user_id_in(o: Option<&Map<String, Value>>, name: &'static str) -> Result<Option<String>, WebhookError> {
    user_id(o.and_then(|o| o.get("id")), name)
}

/// Ids arrive as numbers (v1) or strings (v2).
fn id_text(v: Option<&Value>, name: &'static str) -> Result<Option<String>, WebhookError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => Ok(Some(n.to_string())),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 255 && !s.chars().any(char::is_control) => {
            Ok(Some(s.clone()))
        }
        Some(Value::String(_)) => Err(field(name, "must be 1 to 255 characters without control characters")),
        Some(_) => Err(field(name, "must be a string or an integer")),
    }
}

/// `prefix:part:part...` when that is short and plain; otherwise
/// `prefix:sha256:<hex>` of it, so a key always fits the 255-character column.
fn bounded_key(prefix: &str, parts: &[&str]) -> String {
    let joined = format!("{prefix}:{}", parts.join(":"));
    let plain = joined.len() <= 200 && joined.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    if plain {
        joined
    } else {
        format!("{prefix}:sha256:{}", hex::encode(Sha256::digest(joined.as_bytes())))
    }
}

/// True when the bytes open more than `max` nested arrays/objects at some
/// point (strings skipped). Checked before `serde_json` so a deep body is
/// refused cheaply and with a clear reason.
pub fn json_depth_exceeds(bytes: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests;
