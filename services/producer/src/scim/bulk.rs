//! Microsoft Entra's API-driven inbound provisioning (docs/integrators/scim-entra.md):
//! `POST /scim/v2/bulkUpload` takes a SCIM `BulkRequest`, which
//! `lifecycle_ops::scim::bulk` checks and stores; [`run`] is the producer's
//! background loop that has it worked through, and [`render`] the
//! `BulkResponse` that `GET /scim/v2/bulkUpload/{id}` answers.

use crate::AppState;
use lifecycle_ops::scim::bulk::{OperationState, Status};
use lifecycle_scim::{ScimError, ScimType};
use serde_json::{json, Value};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub use lifecycle_ops::scim::bulk::{accept, parse, status};

/// `schemas` of the answer (RFC 7644 §3.7).
pub const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

/// How often the loop looks for requests nobody woke it for (another
/// producer's, or one whose lease lapsed).
const POLL: Duration = Duration::from_secs(5);

/// The request as an operator reads it: a `BulkResponse` (RFC 7644 §3.7.3)
/// with each operation's `status` (or `state: pending`), the user's
/// `location`, and the error of one that failed.
pub fn render(status: &Status, base: &str) -> Value {
    let (request, ops) = (&status.request, &status.operations);
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

/// Works through stored requests until `shutdown`: woken when a request is
/// stored, and every [`POLL`] for requests another producer left or stored.
pub async fn run(state: AppState, shutdown: CancellationToken) {
    let owner = format!("producer-{}", uuid::Uuid::new_v4().simple());
    let config = state.scim.clone();
    loop {
        if !config.tokens.is_empty() {
            let scim = super::scim_for(&state, &state.scim);
            lifecycle_ops::scim::bulk::work(&scim.ops, &owner, || shutdown.is_cancelled(), &state.relay_wake).await;
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = config.bulk_wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}
