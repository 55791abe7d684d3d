//! Liveness, readiness and metrics.

use crate::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

/// The process is up.
pub async fn alive() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// The database and the broker answer. (The intake keeps accepting events
/// while the broker is away; this says it is away.)
pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    let database = lifecycle_ops::db::ping(&state.db).await;
    let broker = state.publisher.check().await.map_err(|e| e.to_string());
    let ok = database.is_ok() && broker.is_ok();
    let body = json!({
        "status": if ok { "ready" } else { "unavailable" },
        "database": database.err().unwrap_or_else(|| "ok".into()),
        "broker": broker.err().unwrap_or_else(|| "ok".into()),
    });
    (if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(body))
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    if let Ok((count, oldest)) = lifecycle_ops::outbox::lag(&state.db).await {
        metrics::gauge!("lifecycle_outbox_unsent").set(count as f64);
        let age = oldest.map(|t| (chrono::Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0).unwrap_or(0.0);
        metrics::gauge!("lifecycle_outbox_lag_seconds").set(age);
    }
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
}
