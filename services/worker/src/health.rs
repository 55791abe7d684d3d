//! `/healthz`, `/readyz` and `/metrics` for the worker.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use lifecycle_broker::{Publisher, Topology};
use lifecycle_store::Db;
use lifecycle_telemetry::Metrics;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

#[derive(Clone)]
pub struct HealthState {
    pub db: Db,
    pub connected: Arc<AtomicBool>,
    pub metrics: Metrics,
    pub publisher: Arc<Publisher>,
    pub topology: Topology,
}

pub fn router(state: HealthState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({ "status": "ok" })) }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn ready(State(s): State<HealthState>) -> impl IntoResponse {
    let database = s.db.ping().await.map_err(|e| e.to_string());
    let consuming = s.connected.load(Ordering::Relaxed);
    let ok = database.is_ok() && consuming;
    let body = json!({
        "status": if ok { "ready" } else { "unavailable" },
        "database": database.err().unwrap_or_else(|| "ok".into()),
        "broker": if consuming { "consuming" } else { "not connected" },
    });
    (if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(body))
}

async fn metrics(State(s): State<HealthState>) -> impl IntoResponse {
    let _ = (&s.publisher, &s.topology);
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render())
}
