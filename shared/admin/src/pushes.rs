//! Pushes over the admin API (issue 29): `GET /api/v1/pushes` (newest first;
//! `pending=true` for those not done, `limit`) and `GET /api/v1/pushes/{id}`:
//! each big SCIM group write's fan-out, with its progress (members done of
//! the total, events made, state, started, finished). The reads are
//! `lifecycle_ops::push`, shared with the console and the ctl.

use crate::problem::Problem;
use crate::AdminState;
use axum::extract::{Path, Query, State};
use axum::Json;
use lifecycle_ops::{push, OpsError};
use serde::Deserialize;
use serde_json::Value;

type ApiResult = Result<Json<Value>, Problem>;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListParams {
    pending: Option<bool>,
    limit: Option<u64>,
}

pub(crate) async fn list(State(s): State<AdminState>, Query(p): Query<ListParams>) -> ApiResult {
    let limit = p.limit.unwrap_or(100).clamp(1, 1000);
    let list = push::list(&s.db, p.pending.unwrap_or(false), limit).await.map_err(OpsError::from)?;
    Ok(Json(serde_json::to_value(list).expect("views serialize")))
}

pub(crate) async fn show(State(s): State<AdminState>, Path(id): Path<String>) -> ApiResult {
    let p = push::get(&s.db, &id).await.map_err(OpsError::from)?;
    let p = p.ok_or_else(|| OpsError::NotFound(format!("no push {id}")))?;
    Ok(Json(serde_json::to_value(p).expect("views serialize")))
}
