//! Runs the blast-radius guard held (`[safety]`) over the admin API:
//! `GET /api/v1/held`, `POST /api/v1/held/release` and `POST /api/v1/held/cancel`
//! (all held runs, or those matching `vendor`, `since`, `employee`; a preview
//! with the count and a sample unless `"yes": true`). The operations are
//! `lifecycle_ops::safety`, shared with the ctl.

use crate::problem::Problem;
use crate::AdminState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Query, State};
use axum::Json;
use lifecycle_ops::filter::{parse_name, parse_time};
use lifecycle_ops::safety::{self, HeldFilter};
use lifecycle_ops::OpsError;
use serde::Deserialize;
use serde_json::{json, Value};

type ApiResult = Result<Json<Value>, Problem>;

/// Runs shown in a preview.
const SAMPLE: usize = 10;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HeldParams {
    vendor: Option<String>,
    /// RFC 3339 or an age (`2h`).
    since: Option<String>,
    employee: Option<String>,
    limit: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HeldBody {
    #[serde(default)]
    vendor: Option<String>,
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    employee: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    /// Without it, a preview: the count and a sample; nothing changes.
    #[serde(default)]
    yes: bool,
}

fn filter(vendor: Option<&str>, since: Option<&str>, employee: Option<&str>) -> Result<HeldFilter, Problem> {
    Ok(HeldFilter {
        vendor: vendor.filter(|v| !v.is_empty()).map(|v| parse_name("vendor", v)).transpose()?,
        since: since
            .filter(|t| !t.is_empty())
            .map(|t| parse_time(t).map_err(|e| OpsError::Invalid(format!("since: {e}"))))
            .transpose()?,
        employee: employee.filter(|e| !e.trim().is_empty()).map(str::to_string),
    })
}

/// A JSON body is required on every change (it doubles as CSRF protection).
fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, Problem> {
    b.map(|Json(v)| v).map_err(|e| {
        Problem::new(e.status(), "invalid-body", format!("{} (changes take a JSON body, {{}} at least)", e.body_text()))
    })
}

pub(crate) async fn list(State(s): State<AdminState>, Query(p): Query<HeldParams>) -> ApiResult {
    let f = filter(p.vendor.as_deref(), p.since.as_deref(), p.employee.as_deref())?;
    let view = safety::held(&s.db, &f, p.limit.unwrap_or(100).clamp(1, 10_000)).await?;
    Ok(Json(serde_json::to_value(view).expect("views serialize")))
}

pub(crate) async fn release(State(s): State<AdminState>, b: Result<Json<HeldBody>, JsonRejection>) -> ApiResult {
    act(s, body(b)?, true).await
}

pub(crate) async fn cancel(State(s): State<AdminState>, b: Result<Json<HeldBody>, JsonRejection>) -> ApiResult {
    act(s, body(b)?, false).await
}

async fn act(s: AdminState, b: HeldBody, release: bool) -> ApiResult {
    let f = filter(b.vendor.as_deref(), b.since.as_deref(), b.employee.as_deref())?;
    let verb = if release { "release" } else { "cancel" };
    if !b.yes {
        let view = safety::held(&s.db, &f, SAMPLE).await?;
        let message =
            format!("a preview: nothing was done; send \"yes\": true to {verb} these {} held run(s)", view.count);
        let mut v = serde_json::to_value(view).expect("views serialize");
        v["preview"] = json!(true);
        v["message"] = json!(message);
        return Ok(Json(v));
    }
    let actor = s.actor();
    let reason = b.reason.as_deref();
    let done = if release {
        safety::release(&s.db, &f, &actor, reason, false).await?
    } else {
        safety::cancel(&s.db, &f, &actor, reason, false).await?
    };
    let line = done.line();
    let mut v = serde_json::to_value(done).expect("views serialize");
    v["message"] = json!(line);
    Ok(Json(v))
}
