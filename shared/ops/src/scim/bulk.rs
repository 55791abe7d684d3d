//! Microsoft Entra's API-driven inbound provisioning (docs/integrators/scim-entra.md):
//! a SCIM `BulkRequest` of at most [`MAX_OPERATIONS`] `POST /Users`
//! operations is checked ([`parse`]) and stored ([`accept`]); [`work`] then
//! writes each operation's user through the same path as a SCIM
//! `POST`/`PUT /Users` ([`Scim::create_user`], [`Scim::update_user`]), and
//! keeps its result for [`status`].
//!
//! Entra's `POST` means "this is the person now" (create, update, enable or
//! disable: the receiver decides), so an operation is an upsert: the user
//! whose `externalId` (else `userName`) matches is replaced, else one is
//! created. That makes every operation safe to do again: a request sent
//! twice has one id (its body's hash) and is stored once, and an operation
//! redone after a producer stopped half-way finds the user it made and
//! changes nothing.

use super::{Change, Error, Result, Scim, User, Written};
use chrono::Utc;
use lifecycle_scim::patch::get_ci;
use lifecycle_scim::{ScimError, ScimType};
use lifecycle_store::entity::{scim_bulk_operation, scim_bulk_request};
use lifecycle_store::scim::{self as users, UserFilter};
use lifecycle_store::scim_bulk::{self as store, NewRequest, Outcome, Stored};
use serde_json::Value;
use std::time::Duration;
use tokio::sync::Notify;
use tracing::{info, warn, Instrument};

pub use lifecycle_store::scim_bulk::OperationState;

/// `schemas` of a bulk request (RFC 7644 §3.7).
pub const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
/// Entra sends at most 50 operations a request (learn.microsoft.com, synchronization-bulkupload).
pub const MAX_OPERATIONS: usize = 50;

/// How long a producer holds a request it works on; renewed after each operation.
const LEASE: Duration = Duration::from_secs(120);
/// How long a request waits after the database failed under it.
const RETRY_AFTER: Duration = Duration::from_secs(15);

/// One operation of a request, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub bulk_id: String,
    /// The SCIM user (core schema and enterprise extension), checked when it is written.
    pub data: Value,
}

/// The operations of a `BulkRequest`, or the SCIM error refusing all of it.
/// Only the envelope is checked here; each user is checked when it is
/// written, so one bad person is their operation's failure, not the request's.
pub fn parse(body: &Value) -> Result<Vec<Operation>, ScimError> {
    let obj = body.as_object().ok_or_else(|| ScimError::invalid_syntax("a BulkRequest must be a JSON object"))?;
    let schema_ok = get_ci(obj, "schemas")
        .and_then(Value::as_array)
        .is_some_and(|s| s.iter().any(|v| v.as_str().is_some_and(|v| v.eq_ignore_ascii_case(BULK_REQUEST))));
    if !schema_ok {
        return Err(ScimError::invalid_value(format!("schemas must include {BULK_REQUEST}")));
    }
    let ops = get_ci(obj, "Operations")
        .and_then(Value::as_array)
        .ok_or_else(|| ScimError::invalid_value("Operations must be a list of operations"))?;
    if ops.is_empty() {
        return Err(ScimError::invalid_value("Operations is empty: send 1 to 50 operations"));
    }
    if ops.len() > MAX_OPERATIONS {
        // 400 as Entra's own bulkUpload answers a request against its schema. (RFC 7644's
        // `/Bulk` says 413, but the listener answers every 413 in its problem format, which
        // has no scimType.)
        return Err(ScimError::new(
            400,
            Some(ScimType::TooMany),
            format!("{} operations: a bulkUpload request takes at most {MAX_OPERATIONS}", ops.len()),
        ));
    }
    let mut out: Vec<Operation> = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let op =
            op.as_object().ok_or_else(|| ScimError::invalid_syntax(format!("Operations[{i}] must be an object")))?;
        let text = |attr: &str| get_ci(op, attr).and_then(Value::as_str).map(str::trim);
        match text("method") {
            Some(m) if m.eq_ignore_ascii_case("POST") => {}
            other => {
                return Err(ScimError::invalid_value(format!(
                    "Operations[{i}].method is {}: bulkUpload takes POST only (Entra decides create, update or disable; so does lifecycle)",
                    other.map_or_else(|| "missing".to_string(), |m| format!("{m:?}"))
                )))
            }
        }
        match text("path") {
            Some(p) if p.eq_ignore_ascii_case("/Users") => {}
            other => {
                return Err(ScimError::invalid_path(format!(
                    "Operations[{i}].path is {}: bulkUpload takes /Users only",
                    other.map_or_else(|| "missing".to_string(), |p| format!("{p:?}"))
                )))
            }
        }
        let bulk_id = match text("bulkId") {
            Some(b) if !b.is_empty() && b.len() <= lifecycle_scim::resource::MAX_NAME => b.to_string(),
            _ => {
                return Err(ScimError::invalid_value(format!(
                    "Operations[{i}].bulkId must be a string of 1 to {} characters",
                    lifecycle_scim::resource::MAX_NAME
                )))
            }
        };
        if out.iter().any(|o| o.bulk_id == bulk_id) {
            return Err(ScimError::invalid_value(format!(
                "Operations[{i}].bulkId {bulk_id:?} is used twice: each operation's result is named by it"
            )));
        }
        let data = get_ci(op, "data").filter(|d| d.is_object()).cloned().ok_or_else(|| {
            ScimError::invalid_syntax(format!("Operations[{i}].data must be a SCIM user (an object)"))
        })?;
        out.push(Operation { bulk_id, data });
    }
    Ok(out)
}

/// A request's id: the hex SHA-256 of its canonical JSON, so the same
/// request (whatever its whitespace or key order) is the same id.
pub fn request_id(body: &Value) -> String {
    lifecycle_domain::event::payload_hash(body)
}

/// What [`accept`] stored.
pub struct Accepted {
    pub id: String,
    /// The same request was stored before: nothing new was.
    pub replayed: bool,
}

/// Stores a checked request for [`work`] to work through; the caller wakes it.
pub async fn accept(db: &lifecycle_store::Db, body: &Value, ops: &[Operation]) -> Result<Accepted> {
    let id = request_id(body);
    let bulk_ids: Vec<String> = ops.iter().map(|o| o.bulk_id.clone()).collect();
    let new = NewRequest { id: &id, body: &body.to_string(), bulk_ids: &bulk_ids };
    let replayed = store::insert(db, new, Utc::now()).await? == Stored::Existing;
    if !replayed {
        metrics::counter!("lifecycle_scim_bulk_requests_total").increment(1);
        info!(request = %id, operations = ops.len(), "SCIM bulk request stored");
    }
    Ok(Accepted { id, replayed })
}

/// A stored request and each of its operations, in order.
pub struct Status {
    pub request: scim_bulk_request::Model,
    pub operations: Vec<scim_bulk_operation::Model>,
}

/// The request `id` as it stands.
pub async fn status(db: &lifecycle_store::Db, id: &str) -> Result<Status> {
    let request = store::get_request(db, id)
        .await?
        .ok_or_else(|| Error::NotFound { kind: "bulk request", id: id.to_string() })?;
    let operations = store::operations(db, id).await?;
    Ok(Status { request, operations })
}

/// Every request there is to take, one after the other, until `stopping`
/// says so; `relay_wake` is notified when an operation stored events.
pub async fn work(scim: &Scim<'_>, owner: &str, stopping: impl Fn() -> bool, relay_wake: &Notify) {
    while !stopping() {
        let request = match store::claim(scim.db, owner, LEASE, Utc::now()).await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                warn!(error = %e, "SCIM bulk requests could not be read; trying again later");
                return;
            }
        };
        let span = tracing::info_span!("scim_bulk", request = %request.id, attempt = request.attempts);
        if !process(scim, owner, &request, relay_wake).instrument(span).await {
            return;
        }
    }
}

/// Writes the request's pending operations; false when the database failed
/// (the request waits [`RETRY_AFTER`] and the loop rests).
async fn process(scim: &Scim<'_>, owner: &str, request: &scim_bulk_request::Model, relay_wake: &Notify) -> bool {
    let body: Value = serde_json::from_str(&request.body).unwrap_or(Value::Null);
    // Checked when it was accepted; unreadable now only if the row was altered.
    let ops = parse(&body).unwrap_or_default();
    let pending = match store::pending_operations(scim.db, &request.id).await {
        Ok(p) => p,
        Err(e) => return rest(scim, request, owner, &e.to_string()).await,
    };
    for row in pending {
        let Some(op) = usize::try_from(row.position).ok().and_then(|i| ops.get(i)) else {
            let outcome = failed(ScimError::new(500, None, "the stored request has no such operation"));
            let _ = store::record(scim.db, &request.id, row.position, outcome, Utc::now()).await;
            continue;
        };
        let outcome = match upsert(scim, op.data.clone()).await.map_err(ScimError::from) {
            Ok((upserted, w)) => {
                if w.events > 0 {
                    relay_wake.notify_one();
                }
                let outcome = match (upserted, w.events) {
                    (Upserted::Created, _) => "created",
                    (_, 0) => "unchanged",
                    _ => "updated",
                };
                metrics::counter!("lifecycle_scim_bulk_operations_total", "outcome" => outcome).increment(1);
                Outcome {
                    state: OperationState::Succeeded,
                    status: upserted.status(),
                    scim_type: None,
                    detail: None,
                    user_id: Some(w.resource.id),
                    events: w.events,
                }
            }
            // The database, not the person: the operation is done again later.
            Err(e) if e.status >= 500 => return rest(scim, request, owner, &e.detail).await,
            Err(e) => {
                metrics::counter!("lifecycle_scim_bulk_operations_total", "outcome" => "failed").increment(1);
                info!(bulk_id = %op.bulk_id, status = e.status, detail = %e.detail, "SCIM bulk operation refused");
                failed(e)
            }
        };
        let now = Utc::now();
        if let Err(e) = store::record(scim.db, &request.id, row.position, outcome, now).await {
            return rest(scim, request, owner, &e.to_string()).await;
        }
        match store::renew(scim.db, &request.id, owner, LEASE, now).await {
            Ok(true) => {}
            // Another producer has it now (this one was too slow): it goes on from here.
            Ok(false) => return true,
            Err(e) => return rest(scim, request, owner, &e.to_string()).await,
        }
    }
    match store::finish(scim.db, &request.id, owner, Utc::now()).await {
        Ok(true) => {
            info!(operations = request.operations, "SCIM bulk request done");
            true
        }
        Ok(false) => true,
        Err(e) => rest(scim, request, owner, &e.to_string()).await,
    }
}

/// The request is left to a later pass, [`RETRY_AFTER`] from now.
async fn rest(scim: &Scim<'_>, request: &scim_bulk_request::Model, owner: &str, error: &str) -> bool {
    warn!(error, "SCIM bulk request interrupted; its pending operations are tried again later");
    let _ = store::renew(scim.db, &request.id, owner, RETRY_AFTER, Utc::now()).await;
    false
}

fn failed(e: ScimError) -> Outcome {
    Outcome {
        state: OperationState::Failed,
        status: e.status,
        scim_type: e.scim_type.map(|t| t.as_str().to_string()),
        detail: Some(e.detail),
        user_id: None,
        events: 0,
    }
}

/// What an [`upsert`] did, as SCIM's `POST /Users` (created) or `PUT /Users/{id}` (replaced).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created,
    Replaced,
}

impl Upserted {
    /// The status the SCIM write would answer: 201, 200.
    pub fn status(self) -> u16 {
        match self {
            Upserted::Created => 201,
            Upserted::Replaced => 200,
        }
    }
}

/// The user `data` describes, written as SCIM's `PUT /Users/{id}` when one
/// matches its `externalId` (else its `userName`), else as `POST /Users`.
pub async fn upsert(scim: &Scim<'_>, data: Value) -> Result<(Upserted, Written<User>)> {
    let input = lifecycle_scim::resource::parse_user(&data)?;
    let filter = match &input.external_id {
        Some(e) => UserFilter::ExternalId(e.clone()),
        None => UserFilter::UserName(input.user_name.clone()),
    };
    let (_, found) = users::list_users(scim.db, &filter, 0, 2).await?;
    match found.as_slice() {
        [] => Ok((Upserted::Created, scim.create_user(&data).await?)),
        [user] => Ok((Upserted::Replaced, scim.update_user(&user.id, Change::Replace(data), None).await?)),
        _ => Err(Error::Taken(match &input.external_id {
            Some(e) => format!("several users have externalId {e:?}: lifecycle cannot tell which this person is"),
            None => format!("several users have userName {:?}", input.user_name),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(method: &str, path: &str, bulk_id: &str) -> Value {
        json!({"method": method, "path": path, "bulkId": bulk_id, "data": {"schemas": [lifecycle_scim::USER_SCHEMA], "userName": "a@example.com"}})
    }

    fn request(ops: Vec<Value>) -> Value {
        json!({"schemas": [BULK_REQUEST], "Operations": ops})
    }

    #[test]
    fn an_entra_request_is_read_in_order() {
        let ops = parse(&request(vec![op("POST", "/Users", "b1"), op("post", "/users", "b2")])).unwrap();
        assert_eq!(ops.iter().map(|o| o.bulk_id.as_str()).collect::<Vec<_>>(), ["b1", "b2"]);
        assert_eq!(ops[0].data["userName"], "a@example.com");
    }

    #[test]
    fn refusals_name_the_operation_and_the_scim_type() {
        let refused = |body: Value| parse(&body).unwrap_err();
        let e = refused(request((0..51).map(|i| op("POST", "/Users", &format!("b{i}"))).collect()));
        assert_eq!((e.status, e.scim_type), (400, Some(ScimType::TooMany)));
        let e = refused(request(vec![op("POST", "/Users", "b1"), op("PATCH", "/Users", "b2")]));
        assert_eq!((e.status, e.scim_type), (400, Some(ScimType::InvalidValue)));
        assert!(e.detail.contains("Operations[1].method"), "{}", e.detail);
        let e = refused(request(vec![op("POST", "/Groups", "b1")]));
        assert_eq!((e.status, e.scim_type), (400, Some(ScimType::InvalidPath)));
        let e = refused(request(vec![op("POST", "/Users", "b1"), op("POST", "/Users", "b1")]));
        assert!(e.detail.contains("used twice"), "{}", e.detail);
        let e = refused(json!({"schemas": [lifecycle_scim::PATCH_OP], "Operations": [op("POST", "/Users", "b1")]}));
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
        assert_eq!(refused(request(vec![])).status, 400);
        let mut no_data = op("POST", "/Users", "b1");
        no_data["data"] = json!("x");
        assert_eq!(refused(request(vec![no_data])).scim_type, Some(ScimType::InvalidSyntax));
    }

    #[test]
    fn the_same_request_has_the_same_id_whatever_its_key_order() {
        let a: Value = serde_json::from_str(r#"{"schemas":["s"],"Operations":[{"a":1,"b":2}]}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{ "Operations": [ {"b":2, "a":1} ], "schemas": ["s"] }"#).unwrap();
        assert_eq!(request_id(&a), request_id(&b));
        assert_ne!(request_id(&a), request_id(&json!({"schemas": ["s"], "Operations": []})));
    }
}
