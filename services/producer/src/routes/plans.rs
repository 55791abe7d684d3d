//! `POST /v1/plans` (docs/contract.md §1): what each vendor's workflow would
//! do for an event now, from reads at the vendors. Nothing is stored: no
//! event, no run, no idempotency key.

use super::events::{authenticate, parse_event, read_body, require_json};
use crate::problem::Problem;
use crate::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use tracing::{info, warn};

/// Checks as `POST /v1/events` does (credentials, media type, size, JSON,
/// fields), and that the token has the `plans` scope (403), then plans. 200 with one plan per vendor the event names.
pub async fn plan(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        // Plans read the vendors' directories (who has an account, their ids
        // and roles): only a token configured with `plans = true` may ask.
        if !authenticate(&state, &headers)?.plans {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Forbidden",
                "this intake token may not ask for plans: give it `plans = true` in producer.intake_tokens",
            ));
        }
        require_json(&headers)?;
        let bytes = read_body(&headers, body, state.max_body_bytes).await?;
        let (_, event) = parse_event(&bytes)?;
        Ok::<_, Problem>(lifecycle_ops::plan::plan(&state.plans_registry, &event).await)
    }
    .await;
    match result {
        Ok(plan) => {
            info!(event_type = %plan.event_type, vendors = plan.vendors.len(), "plan made");
            (StatusCode::OK, Json(plan)).into_response()
        }
        Err(problem) => {
            warn!(status = problem.status(), problem = problem.slug(), detail = %problem.detail(), "plan refused");
            problem.into_response()
        }
    }
}
