//! `/healthz`, `/readyz` and `/metrics` for the worker.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use lifecycle_broker::{Publisher, Topology};
use lifecycle_ops::db::Db;
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
    let database = lifecycle_ops::db::ping(&s.db).await;
    let consuming = s.connected.load(Ordering::Relaxed);
    let ok = database.is_ok() && consuming;
    let body = json!({
        "status": if ok { "ready" } else { "unavailable" },
        "database": database.err().unwrap_or_else(|| "ok".into()),
        "broker": if consuming { "consuming" } else { "not connected" },
    });
    (if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(body))
}

/// Besides what the code records as it goes, two gauges are read at scrape
/// time: runs by state and vendor (from the database, so every worker reports
/// the same numbers: aggregate with `max`), and each queue's depth.
async fn metrics(State(s): State<HealthState>) -> impl IntoResponse {
    if let Ok(counts) = lifecycle_ops::query::runs::counts(&s.db).await {
        for state in lifecycle_domain::RunState::ALL {
            for vendor in lifecycle_domain::VendorKind::ALL {
                let n = counts.iter().find(|(st, v, _)| *st == state && *v == vendor).map_or(0, |c| c.2);
                metrics::gauge!("lifecycle_runs", "state" => state.as_str(), "vendor" => vendor.as_str()).set(n as f64);
            }
        }
    }
    match s.publisher.queue_depths().await {
        Ok(depths) => {
            for (queue, messages, consumers) in depths {
                let kind = queue_kind(&s.topology, &queue);
                metrics::gauge!("lifecycle_queue_messages", "queue" => queue.clone(), "kind" => kind)
                    .set(messages as f64);
                metrics::gauge!("lifecycle_queue_consumers", "queue" => queue, "kind" => kind).set(consumers as f64);
            }
        }
        Err(e) => tracing::debug!(error = %e, "queue depths unavailable for this scrape"),
    }
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.metrics.render())
}

fn queue_kind(t: &Topology, queue: &str) -> &'static str {
    if t.lane_queues().iter().any(|q| q == queue) {
        "lane"
    } else if queue == t.dead_queue() {
        "dead"
    } else {
        "delay"
    }
}
