//! The admin API and web console: what an operator does from a browser or a
//! script, served on its own listener (`admin.listen`, never the intake's)
//! behind its own HTTP Basic credentials (`admin.username`/`admin.password`).
//!
//! - `/api/v1/...` is JSON, errors are `application/problem+json`; every
//!   change is a JSON POST, which a cross-site form cannot send.
//! - `/` and below is the console: server-rendered HTML (askama templates,
//!   escaped), no JavaScript needed. Replay, discard, cancel, re-check and
//!   reconcile's fixes are POST forms behind a confirmation page and carry a
//!   CSRF token for that action on that run (or selection),
//!   signed with a key derived from `admin.csrf_secret` (or drawn at random
//!   at start); a form sent from another origin, or from `Origin: null`, is
//!   refused.
//! - Wrong passwords are throttled per client address (growing delays, then
//!   429), with a warning in the log. Even so, the admin listener belongs on
//!   a private network, behind a VPN or an authenticating proxy.
//!
//! The operations themselves come from `lifecycle_ops`, shared with
//! `lifecycle-ctl`, so the three front ends mean the same thing.

mod api;
mod approvals;
mod auth;
mod console;
mod edits;
mod held;
mod hris;
mod params;
mod problem;
mod pushes;

use axum::http::{header, HeaderValue, StatusCode};
use axum::Router;
use lifecycle_broker::Publisher;
use lifecycle_config::{AdminSettings, Secret};
use lifecycle_listener::{AuthThrottle, ThrottlePolicy};
use lifecycle_ops::db::Db;
use lifecycle_telemetry::BuildInfo;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub use lifecycle_listener::Limits;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

pub use auth::{Csrf, FormAction};
pub use problem::Problem;

/// Why the admin listener did not start. The intake is unaffected by all of them.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Configure a password (or disable the listener with `admin.listen = ""`).
    #[error(
        "the admin API and console are not started: admin.password is not set (set it, or \
         LIFECYCLE_ADMIN__PASSWORD / LIFECYCLE_ADMIN__PASSWORD__FILE; admin.listen = \"\" disables the admin listener)"
    )]
    NoPassword,
    /// Pick another address: the admin API is never served on the intake listener.
    #[error("admin.listen ({0}) is the intake listener's address; the admin API needs its own listener")]
    SameAsIntake(String),
    /// The address is taken or invalid.
    #[error("cannot listen on {addr} for the admin API: {source}")]
    Bind { addr: String, source: std::io::Error },
}

/// What every admin handler can reach.
#[derive(Clone)]
pub struct AdminState {
    pub db: Db,
    pub publisher: Arc<Publisher>,
    pub username: Arc<str>,
    pub password: Secret,
    pub csrf: Csrf,
    /// Wrong passwords per client address.
    pub throttle: AuthThrottle,
    /// The vendors, for reconcile, plans and fixes (none until [`AdminState::with_vendors`]).
    pub vendors: lifecycle_ops::Vendors,
    /// The binary's version and commit: `GET /api/v1/version` and the console's footer.
    pub build: BuildInfo,
}

impl AdminState {
    /// With a CSRF key drawn at random (see [`AdminState::with_csrf_secret`]).
    pub fn new(db: Db, publisher: Arc<Publisher>, username: &str, password: Secret) -> Self {
        let throttle = AuthThrottle::new("admin", ThrottlePolicy::default());
        Self {
            db,
            publisher,
            username: username.into(),
            password,
            csrf: Csrf::random(),
            throttle,
            vendors: lifecycle_ops::Vendors::default(),
            build: BuildInfo::unknown(),
        }
    }

    /// The version and commit the API and the console report.
    pub fn with_build(mut self, build: BuildInfo) -> Self {
        self.build = build;
        self
    }

    /// With the vendors that reconcile and plans read.
    pub fn with_vendors(mut self, vendors: lifecycle_ops::Vendors) -> Self {
        self.vendors = vendors;
        self
    }

    /// CSRF tokens keyed from `secret`: they survive restarts, and every
    /// producer with the same secret accepts the others' forms.
    pub fn with_csrf_secret(mut self, secret: &Secret) -> Self {
        self.csrf = Csrf::from_secret(secret);
        self
    }

    /// The audit log's name for whoever uses these credentials.
    pub fn actor(&self) -> String {
        format!("admin:{}", self.username)
    }
}

/// The admin listener's limits, from its settings.
pub fn limits(s: &AdminSettings) -> Limits {
    Limits::new(s.request_timeout, s.max_concurrent_requests, s.max_body_bytes)
}

/// The admin API and console, authenticated, with timeouts and limits.
pub fn router(state: AdminState, limits: Limits) -> Router {
    let app = Router::new()
        .nest("/api/v1", api::routes())
        .merge(console::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::require_basic))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
        // Method, path, status, latency; never headers (they carry the password).
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO).latency_unit(tower_http::LatencyUnit::Millis)),
        )
        // Extractors (JSON, forms) honour this limit too, not only the body-limit layer.
        .layer(axum::extract::DefaultBodyLimit::max(limits.max_body_bytes.max(1024)));
    // The same timeouts, concurrency and body limits as every other listener.
    lifecycle_listener::harden(app, &limits)
}

async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not-found", "no such page or endpoint")
}

/// A known path with the wrong method (axum still adds the `Allow` header).
async fn method_not_allowed(method: axum::http::Method) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        format!("this endpoint does not accept {method}; the Allow header lists what it does"),
    )
}

/// Pages are not cached, framed, allowed to load anything from elsewhere, or
/// named to other sites in a `Referer`.
async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // No Referer leaves the console; on our own forms the browser then still
    // sends their real Origin, which the CSRF check compares with Host (under
    // `no-referrer` it would send `Origin: null`, which is refused).
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    res
}

/// A started admin listener: its address, and the server to spawn.
pub struct Serving {
    pub addr: SocketAddr,
    pub server: Pin<Box<dyn Future<Output = ()> + Send>>,
}

/// Binds the admin listener when configured. `Ok(None)`: disabled
/// (`admin.listen` is empty). Errors say why it could not start; the caller
/// keeps serving the intake either way.
pub async fn bind(
    settings: &AdminSettings,
    intake_listen: &str,
    db: Db,
    publisher: Arc<Publisher>,
    vendors: lifecycle_ops::Vendors,
    build: BuildInfo,
    shutdown: CancellationToken,
) -> Result<Option<Serving>, AdminError> {
    let listen = settings.listen.trim();
    if listen.is_empty() {
        return Ok(None);
    }
    let password = settings.password.clone().filter(|p| !p.expose().is_empty()).ok_or(AdminError::NoPassword)?;
    if listen == intake_listen.trim() && !listen.ends_with(":0") {
        return Err(AdminError::SameAsIntake(listen.to_string()));
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| AdminError::Bind { addr: listen.to_string(), source })?;
    let addr = listener.local_addr().map_err(|source| AdminError::Bind { addr: listen.to_string(), source })?;
    let limits = limits(settings);
    let mut state =
        AdminState::new(db, publisher, &settings.username, password).with_vendors(vendors).with_build(build);
    match &settings.csrf_secret {
        Some(secret) => state = state.with_csrf_secret(secret),
        None => tracing::info!(
            "admin.csrf_secret is not set: the console's forms are signed with a key drawn at start, \
             so a form opened before a restart must be reloaded"
        ),
    }
    match lifecycle_listener::TrustedProxies::parse(&settings.trusted_proxies) {
        Ok(proxies) => state.throttle = state.throttle.with_trusted_proxies(proxies),
        // The settings were checked at load; this cannot happen with them.
        Err(e) => tracing::error!("admin.trusted_proxies: {e}; X-Forwarded-For is ignored"),
    }
    state.throttle.spawn_janitor();
    let app = router(state, limits);
    let server = Box::pin(async move {
        lifecycle_listener::serve(listener, app, &limits, async move { shutdown.cancelled().await }).await;
    });
    Ok(Some(Serving { addr, server }))
}
