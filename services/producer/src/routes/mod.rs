//! The intake listener's routes and the layers every request passes through.

pub(crate) mod events;
mod health;
pub mod hris;
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
    // Each of these checks its credentials first and marks a wrong one
    // (`lifecycle_listener::AuthVerdict::Wrong`): the throttle counts those
    // per client address and answers that address's further wrong ones 429
    // (see `lifecycle_listener::throttle`). A valid credential is never held
    // back. One table per kind of credential: guessing SCIM tokens does not
    // slow the intake's callers or Pipedrive's webhooks down, nor the reverse.
    let proxies = TrustedProxies::parse(&settings.trusted_proxies).unwrap_or_else(|e| {
        // The settings were checked at load; this cannot happen with them.
        tracing::error!("producer.trusted_proxies: {e}; X-Forwarded-For is ignored");
        TrustedProxies::default()
    });
    let guard = |listener: &'static str| {
        let throttle = AuthThrottle::new(listener, ThrottlePolicy::default()).with_trusted_proxies(proxies.clone());
        throttle.spawn_janitor();
        axum::middleware::from_fn_with_state(throttle, AuthThrottle::guard_by_verdict)
    };
    let intake = Router::new()
        .route("/v1/events", post(events::accept))
        .route("/v1/events/{id}", get(events::status))
        .route("/v1/events/{id}/cancel", post(events::cancel))
        .route("/v1/plans", post(plans::plan))
        .route_layer(guard("intake"));
    let webhook =
        Router::new().route("/v1/webhooks/pipedrive", post(pipedrive_webhook::receive)).route_layer(guard("webhook"));
    // SCIM 2.0, with its own tokens (docs/contract.md §6).
    // HR systems' signed webhooks: a wrong signature counts as a wrong credential.
    let hr = Router::new().route("/v1/hr/{source}", post(hris::receive)).route_layer(guard("hris"));
    let authenticated = intake.merge(webhook).merge(hr).merge(scim::routes(state.clone()).route_layer(guard("scim")));
    let mut router = authenticated.route("/healthz", get(health::alive)).route("/readyz", get(health::ready));
    if settings.metrics_listen.is_empty() {
        // Else on its own listener (`metrics_router`), not where the intake is published.
        router = router.route("/metrics", get(health::metrics));
    }
    let limits = limits(settings, &state.scim);
    let router = router.fallback(not_found).method_not_allowed_fallback(method_not_allowed).with_state(state);
    lifecycle_listener::harden(router, &limits)
        // Logs method, path, status and latency; never headers (they carry credentials).
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO).latency_unit(tower_http::LatencyUnit::Millis)),
        )
}

/// `producer.metrics_listen`'s routes: `/metrics` and `/healthz`, nothing else.
pub fn metrics_router(state: AppState) -> Router {
    let router = Router::new()
        .route("/metrics", get(health::metrics))
        .route("/healthz", get(health::alive))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state);
    lifecycle_listener::harden(router, &Limits::small())
}

/// The intake listener's own caps. Handlers refuse bodies over their route's
/// limit themselves (413 after reading some); the listener's is the backstop
/// for everything, declared or streamed: as large as a SCIM group's write
/// may be when SCIM is served.
pub fn limits(settings: &ProducerSettings, scim: &crate::scim::ScimConfig) -> Limits {
    let scim_body = if scim.tokens.is_empty() { 0 } else { scim.max_group_body_bytes };
    let backstop =
        settings.max_body_bytes.max(settings.pipedrive_webhook.max_body_bytes).max(events::DRAIN_CAP).max(scim_body);
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
