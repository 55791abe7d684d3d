//! Microsoft Entra's API-driven inbound provisioning (docs/scim/entra-inbound.md):
//! `POST /scim/v2/bulkUpload` takes a SCIM `BulkRequest` of at most
//! [`MAX_OPERATIONS`] `POST /Users` operations, stores it and answers 202; a
//! background [`run`] loop then writes each operation's user through the same
//! path as a SCIM `POST`/`PUT /Users` ([`Scim::create`], [`Scim::update`]),
//! and keeps its result for `GET /scim/v2/bulkUpload/{id}`.
//!
//! Entra's `POST` means "this is the person now" (create, update, enable or
//! disable: the receiver decides), so an operation is an upsert: the user
//! whose `externalId` (else `userName`) matches is replaced, else one is
//! created. That makes every operation safe to do again: a request sent
//! twice has one id (its body's hash) and is stored once, and an operation
//! redone after a producer stopped half-way finds the user it made and
//! changes nothing.

use super::{Change, Scim, Written};
use crate::AppState;
use chrono::Utc;
use lifecycle_scim::filter::Resource;
use lifecycle_scim::patch::get_ci;
use lifecycle_scim::{ScimError, ScimType};
use lifecycle_store::entity::{scim_bulk_operation, scim_bulk_request};
use lifecycle_store::scim::{self as users, UserFilter};
use lifecycle_store::scim_bulk::{self as store, NewRequest, OperationState, Outcome, Stored};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn, Instrument};

/// `schemas` of a bulk request (RFC 7644 §3.7).
pub const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
/// `schemas` of the answer (RFC 7644 §3.7).
pub const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";
/// Entra sends at most 50 operations a request (learn.microsoft.com, synchronization-bulkupload).
pub const MAX_OPERATIONS: usize = 50;

/// How long a producer holds a request it works on; renewed after each operation.
const LEASE: Duration = Duration::from_secs(120);
/// How long a request waits after the database failed under it.
const RETRY_AFTER: Duration = Duration::from_secs(15);
/// How often the loop looks for requests nobody woke it for (another
/// producer's, or one whose lease lapsed).
const POLL: Duration = Duration::from_secs(5);

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

/// Stores a checked request for [`run`] to work through, and wakes it.
pub async fn accept(scim: &Scim<'_>, body: &Value, ops: &[Operation]) -> Result<Accepted, ScimError> {
    let id = request_id(body);
    let bulk_ids: Vec<String> = ops.iter().map(|o| o.bulk_id.clone()).collect();
    let new = NewRequest { id: &id, body: &body.to_string(), bulk_ids: &bulk_ids };
    let stored = store::insert(scim.db, new, Utc::now()).await.map_err(super::db_error)?;
    let replayed = stored == Stored::Existing;
    if !replayed {
        metrics::counter!("lifecycle_scim_bulk_requests_total").increment(1);
        info!(request = %id, operations = ops.len(), "SCIM bulk request stored");
        scim.config.bulk_wake.notify_one();
    }
    Ok(Accepted { id, replayed })
}

/// The request as an operator reads it: a `BulkResponse` (RFC 7644 §3.7.3)
/// with each operation's `status` (or `state: pending`), the user's
/// `location`, and the error of one that failed.
pub async fn status(scim: &Scim<'_>, id: &str) -> Result<Value, ScimError> {
    let request = store::get_request(scim.db, id)
        .await
        .map_err(super::db_error)?
        .ok_or_else(|| ScimError::not_found(format!("no bulk request with id {id:?}")))?;
    let ops = store::operations(scim.db, id).await.map_err(super::db_error)?;
    Ok(render(&request, &ops, &scim.base))
}

/// See [`status`].
pub fn render(request: &scim_bulk_request::Model, ops: &[scim_bulk_operation::Model], base: &str) -> Value {
    let count = |s: OperationState| ops.iter().filter(|o| o.state == s.as_str()).count();
    let operations: Vec<Value> = ops
        .iter()
        .map(|o| {
            let mut out = json!({"method": "POST", "bulkId": o.bulk_id, "state": o.state});
            if let Some(status) = o.status {
                out["status"] = json!(status.to_string());
            }
            if let Some(user) = &o.user_id {
                out["location"] = json!(format!("{base}/Users/{user}"));
            }
            if o.state == OperationState::Succeeded.as_str() {
                out["events"] = json!(o.events);
            }
            if o.state == OperationState::Failed.as_str() {
                let scim_type = o.scim_type.as_deref().and_then(scim_type);
                let status = o.status.and_then(|s| u16::try_from(s).ok()).unwrap_or(400);
                out["response"] = ScimError::new(status, scim_type, o.detail.clone().unwrap_or_default()).to_json();
            }
            out
        })
        .collect();
    json!({
        "schemas": [BULK_RESPONSE],
        "id": request.id,
        "status": request.state,
        "receivedAt": request.received_at.to_rfc3339(),
        "finishedAt": request.finished_at.map(|t| t.to_rfc3339()),
        "totals": {
            "operations": request.operations,
            "succeeded": count(OperationState::Succeeded),
            "failed": count(OperationState::Failed),
            "pending": count(OperationState::Pending),
        },
        "meta": {"resourceType": "BulkRequest", "location": format!("{base}/bulkUpload/{}", request.id)},
        "Operations": operations,
    })
}

fn scim_type(s: &str) -> Option<ScimType> {
    use ScimType::*;
    [InvalidFilter, TooMany, Uniqueness, Mutability, InvalidSyntax, InvalidPath, NoTarget, InvalidValue, InvalidVers]
        .into_iter()
        .find(|t| t.as_str() == s)
}

/// Works through stored requests until `shutdown`: woken by [`accept`], and
/// every [`POLL`] for requests another producer left or stored.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let owner = format!("producer-{}", uuid::Uuid::new_v4().simple());
    let config = state.scim.clone();
    loop {
        if !config.tokens.is_empty() {
            work(&state, &owner, &shutdown).await;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = config.bulk_wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Every request there is to take, one after the other.
async fn work(state: &AppState, owner: &str, shutdown: &CancellationToken) {
    let scim = super::scim_for(state, &state.scim);
    while !shutdown.is_cancelled() {
        let request = match store::claim(&state.db, owner, LEASE, Utc::now()).await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                warn!(error = %e, "SCIM bulk requests could not be read; trying again later");
                return;
            }
        };
        let span = tracing::info_span!("scim_bulk", request = %request.id, attempt = request.attempts);
        if !process(&scim, state, owner, &request).instrument(span).await {
            return;
        }
    }
}

/// Writes the request's pending operations; false when the database failed
/// (the request waits [`RETRY_AFTER`] and the loop rests).
async fn process(scim: &Scim<'_>, state: &AppState, owner: &str, request: &scim_bulk_request::Model) -> bool {
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
        let outcome = match upsert(scim, op.data.clone()).await {
            Ok((status, w)) => {
                if w.events > 0 {
                    state.relay_wake.notify_one();
                }
                let outcome = match (status, w.events) {
                    (201, _) => "created",
                    (_, 0) => "unchanged",
                    _ => "updated",
                };
                metrics::counter!("lifecycle_scim_bulk_operations_total", "outcome" => outcome).increment(1);
                Outcome {
                    state: OperationState::Succeeded,
                    status,
                    scim_type: None,
                    detail: None,
                    user_id: w.resource["id"].as_str().map(str::to_string),
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

/// The user `data` describes, written as SCIM's `PUT /Users/{id}` when one
/// matches its `externalId` (else its `userName`), else as `POST /Users`;
/// the status those would answer (200, 201) and what they wrote.
pub async fn upsert(scim: &Scim<'_>, data: Value) -> Result<(u16, Written), ScimError> {
    let input = lifecycle_scim::resource::parse_user(&data)?;
    let filter = match &input.external_id {
        Some(e) => UserFilter::ExternalId(e.clone()),
        None => UserFilter::UserName(input.user_name.clone()),
    };
    let (_, found) = users::list_users(scim.db, &filter, 0, 2).await.map_err(super::db_error)?;
    match found.as_slice() {
        [] => Ok((201, scim.create(Resource::Users, &data).await?)),
        [user] => Ok((200, scim.update(Resource::Users, &user.id, Change::Replace(data), None).await?)),
        _ => Err(ScimError::uniqueness(match &input.external_id {
            Some(e) => format!("several users have externalId {e:?}: lifecycle cannot tell which this person is"),
            None => format!("several users have userName {:?}", input.user_name),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
