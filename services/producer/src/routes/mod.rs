//! The intake listener's routes and the layers every request passes through.

mod events;
mod health;

use crate::problem::Problem;
use crate::AppState;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use lifecycle_config::ProducerSettings;
use std::time::Duration;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

pub fn router(state: AppState, settings: &ProducerSettings) -> Router {
    Router::new()
        .route("/v1/events", post(events::accept))
        .route("/v1/events/{id}", get(events::status))
        .route("/healthz", get(health::alive))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(health::metrics))
        .fallback(not_found)
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                // Logs method, path, status and latency; never headers (they carry tokens).
                .layer(
                    TraceLayer::new_for_http().make_span_with(DefaultMakeSpan::new().level(Level::INFO)).on_response(
                        DefaultOnResponse::new().level(Level::INFO).latency_unit(tower_http::LatencyUnit::Millis),
                    ),
                )
                .layer(CatchPanicLayer::custom(|_| {
                    Problem::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        "Internal error",
                        "the request failed inside lifecycle; it has been logged",
                    )
                    .into_response()
                }))
                .layer(TimeoutLayer::with_status_code(
                    StatusCode::REQUEST_TIMEOUT,
                    settings.request_timeout.max(Duration::from_millis(100)),
                ))
                .layer(tower::limit::ConcurrencyLimitLayer::new(settings.max_concurrent_requests.max(1))),
        )
}

async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", "no such endpoint; events are posted to /v1/events")
}
