//! The intake listener's routes and the layers every request passes through.

pub(crate) mod events;
mod health;
pub mod pipedrive_webhook;
mod plans;
mod scim;

use crate::problem::Problem;
use crate::AppState;
use axum::http::{Method, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use lifecycle_config::ProducerSettings;
use lifecycle_listener::{AuthThrottle, Limits, ThrottlePolicy, TrustedProxies};
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

pub fn router(state: AppState, settings: &ProducerSettings) -> Router {
    // Each of these checks its credentials first and answers 401 when they
    // are wrong: the throttle counts those per client address and slows
    // that address down (see `lifecycle_listener::throttle`).
    let proxies = TrustedProxies::parse(&settings.trusted_proxies).unwrap_or_else(|e| {
        // The settings were checked at load; this cannot happen with them.
        tracing::error!("producer.trusted_proxies: {e}; X-Forwarded-For is ignored");
        TrustedProxies::default()
    });
    let throttle = AuthThrottle::new("intake", ThrottlePolicy::default()).with_trusted_proxies(proxies);
    throttle.spawn_janitor();
    let authenticated = Router::new()
        .route("/v1/events", post(events::accept))
        .route("/v1/events/{id}", get(events::status))
        .route("/v1/events/{id}/cancel", post(events::cancel))
        .route("/v1/plans", post(plans::plan))
        .route("/v1/webhooks/pipedrive", post(pipedrive_webhook::receive))
        // SCIM 2.0, with its own tokens (docs/contract.md §6).
        .merge(scim::routes())
        .route_layer(axum::middleware::from_fn_with_state(throttle, AuthThrottle::guard_by_status));
    let router = authenticated
        .route("/healthz", get(health::alive))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(health::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state);
    lifecycle_listener::harden(router, &limits(settings))
        // Logs method, path, status and latency; never headers (they carry credentials).
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO).latency_unit(tower_http::LatencyUnit::Millis)),
        )
}

/// The intake listener's own caps. Handlers refuse bodies over their route's
/// limit themselves (413 after reading some); the listener's is the backstop
/// for everything, declared or streamed.
pub fn limits(settings: &ProducerSettings) -> Limits {
    let backstop = settings.max_body_bytes.max(settings.pipedrive_webhook.max_body_bytes).max(events::DRAIN_CAP);
    let mut limits = Limits::new(settings.request_timeout, settings.max_concurrent_requests, backstop);
    limits.body_read_timeout = settings.body_read_timeout;
    limits
}

async fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "Not found",
        "no such endpoint; events are posted to /v1/events, Pipedrive webhooks to /v1/webhooks/pipedrive",
    )
}

/// A known path with the wrong method: a problem like every other refusal
/// (axum still adds the `Allow` header).
async fn method_not_allowed(method: Method) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        format!("this endpoint does not accept {method}; the Allow header lists what it does"),
    )
}
