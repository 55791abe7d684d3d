//! HiBob ("Bob") under `/hibob`: the People API read lifecycle makes after a webhook, and a
//! test sender that delivers webhooks as Bob does. Our account of the vendor, with the pages
//! each fact comes from: `docs/hr/hibob.md`.
//!
//! Served (base URL `http://HOST:PORT/hibob/v1`, as `https://api.hibob.com/v1`):
//! - `POST /v1/people/{identifier}`: one employee by backend id or e-mail; the body selects
//!   `fields` (field ids such as `root.email`, `work.department`; ids it does not know are
//!   silently left out, as Bob does) and `humanReadable` (`""`: machine values, list item ids
//!   and ISO dates; `"APPEND"`: those plus a `humanReadable` object with display values;
//!   `"REPLACE"`: display values in place). Without `fields`, a default set. 404 for an
//!   unknown employee;
//! - auth: HTTP Basic with a service user's id and token; anything else is 401;
//! - 50 requests a minute per service user (HiBob's documented `people/search` limit; it
//!   publishes none for this read), then 429 with `X-RateLimit-Limit`, `-Remaining` and
//!   `-Reset` (epoch seconds);
//! - errors are `{"error": "..."}` (Bob's error body is not documented on the pages read).
//!
//! The test sender (not under auth): `POST /hibob/_sim/send` builds a v2 envelope, signs it with
//! `Bob-Signature` (base64 HMAC-SHA512 of the raw body) and posts it to a receiver; see
//! [`sender`]. `type = "ping"` sends Bob's ping test (`Ping test`).
//!
//! Files: `state` (employees, lists, fixture, `/_sim/seed`), `handlers`, `sender`.

mod handlers;
pub mod sender;
mod state;

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::registry::{self, VendorSim};
use crate::sim::Sim;
use crate::token::Token;
use crate::{Config, Fixture};

pub use state::State;

/// The fixture's service user (the API's Basic credentials).
pub const SERVICE_USER_ID: &str = "hibob-sim-service-user";
pub const SERVICE_USER_TOKEN: &str = "hibob-sim-service-token";
/// The fixture's company (the envelope's `companyId`, HiBob's own example number).
pub const COMPANY_ID: &str = "637323";
/// The secret the fixture's webhook would be configured with (the sender takes any).
pub const WEBHOOK_SECRET: &str = "hibob-sim-webhook-secret";
/// Ada Lovelace: active, Sales, London, with a work e-mail.
pub const ACTIVE_SALES_ID: &str = "3332883894235038486";
pub const ACTIVE_SALES_EMAIL: &str = "ada@example.com";
/// Grace Hopper: active, Engineering, no work e-mail.
pub const NO_EMAIL_ID: &str = "3332883894235038487";
/// Alan Turing: terminated (inactive) on 2026-10-31.
pub const TERMINATED_ID: &str = "3332883894235038488";
/// Margaret Hamilton: hired, starts 2027-01-04 (not yet active in Bob's sense).
pub const FUTURE_JOINER_ID: &str = "3332883894235038489";
/// The employee id Bob names in `triggeredBy` for changes a person made (lifecycle
/// events say `system`).
pub const ADMIN_ID: &str = "3332883804594373380";

/// Requests per minute per service user.
pub const RATE_PER_MINUTE: u32 = 50;

/// HiBob's start-up flags (ids prefixed: every vendor's flags share one namespace).
#[derive(Clone, Debug, clap::Args)]
#[group(id = "hibob_flags")]
pub struct Flags {
    /// The built-in service user's id. Never logged.
    #[arg(
        id = "hibob_service_user_id",
        long = "hibob-service-user-id",
        env = "SIM_HIBOB_SERVICE_USER_ID",
        default_value = SERVICE_USER_ID,
        hide_env_values = true
    )]
    pub service_user_id: Token,
    /// The built-in service user's token. Never logged.
    #[arg(
        id = "hibob_service_user_token",
        long = "hibob-service-user-token",
        env = "SIM_HIBOB_SERVICE_USER_TOKEN",
        default_value = SERVICE_USER_TOKEN,
        hide_env_values = true
    )]
    pub service_user_token: Token,
}

impl Default for Flags {
    fn default() -> Self {
        Flags { service_user_id: SERVICE_USER_ID.into(), service_user_token: SERVICE_USER_TOKEN.into() }
    }
}

/// An error as the simulator renders Bob's: `{"error": "..."}` with the status.
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError { status, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

impl VendorSim for State {
    fn new(config: &Config, fixture: Fixture) -> Self {
        let mut state = State::empty(config);
        if fixture == Fixture::Default {
            if let Err(e) = state.load_default_fixture() {
                tracing::error!(error = %e, "hibob default fixture is invalid");
            }
        }
        state
    }

    fn seed(&mut self, body: Value) -> Result<Value, String> {
        registry::seed_atomically(self, body, |state: &mut State, seed: state::Seed| state.apply_seed(seed))
    }

    fn snapshot(&self) -> Value {
        self.snapshot_json()
    }

    fn config(&self) -> Value {
        json!({ "rate_limit": self.limiter.config() })
    }

    fn configure(&mut self, patch: Value) -> Result<(), String> {
        self.limiter.configure_as_only_knob(patch)
    }

    fn injected_error(&self, _uri: &Uri, headers: &HeaderMap, status: StatusCode, now_ms: i64) -> Response {
        if status == StatusCode::TOO_MANY_REQUESTS {
            let user = handlers::basic_user(headers);
            let decision = self.limiter.exhausted(user.as_deref(), now_ms);
            return handlers::rejection(&decision);
        }
        ApiError::new(status, status.canonical_reason().unwrap_or("Error")).into_response()
    }

    fn router(sim: Sim) -> Router<Sim> {
        Router::new()
            .route("/v1/people/{identifier}", post(handlers::read_person))
            .route_layer(from_fn_with_state(sim, handlers::guard))
            // The test sender is the simulator's own, outside Bob's auth.
            .route("/_sim/send", post(sender::send))
            .method_not_allowed_fallback(|| async {
                ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
            })
            .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "Not found") })
    }
}
