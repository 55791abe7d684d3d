//! BambooHR (`/bamboohr`): the read lifecycle's receiver makes after an event-based webhook, and
//! a test sender that signs deliveries as BambooHR does. Our account of the vendor, with its
//! sources: `docs/hr/bamboohr.md`.
//!
//! - `GET /api/gateway.php/{companyDomain}/v1/employees/{id}/` (with or without the trailing
//!   slash): Get Employee. `fields` is a comma-separated list of BambooHR field names; the answer
//!   is an object with `id` and each requested field the simulator knows (`firstName`,
//!   `lastName`, `displayName`, `workEmail`, `department`, `jobTitle`, `location`, `status`,
//!   `employmentHistoryStatus`, `hireDate`, `terminationDate`), every value a string or null, an
//!   unset date `0000-00-00`. JSON when `Accept` asks for it, XML otherwise (BambooHR's default).
//! - Auth: HTTP Basic with an API key as the user and any password (`x` by convention); a
//!   missing or unknown key is 401. An unknown company domain or employee is 404.
//! - Errors carry their reason in `X-BambooHR-Error-Message` and no body.
//! - Rate limit: 10 reads per second per API key (the simulator's number: BambooHR publishes
//!   none), refused with 429 and `Retry-After` (BambooHR's answer since 2026-09-16; a 503 before).
//! - The test sender (not under auth): `POST /bamboohr/_sim/send` ([`sender`]).
//!
//! The fixture's company and credentials are the constants below; `/_sim/seed` takes
//! `{"bamboohr": {"employees": [{...BambooHR field names...}], "api_keys": [...]}}` and replaces
//! an employee whose `id` exists (how a test makes a mover or a leaver).
//!
//! Files: `state` (the company, fixture, seed), `handlers`, `sender`.

mod handlers;
pub mod sender;
mod state;

use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::ratelimit::RateLimitStyle;
use crate::registry::{self, VendorSim};
use crate::sim::Sim;
use crate::token::Token;
use crate::{Config, Fixture};

pub use state::{Employee, State};

/// The company's domain in the API's path (`https://{domain}.bamboohr.com`).
pub const COMPANY_DOMAIN: &str = "sim-company";
/// The company's id as a webhook's `data.companyId` names it.
pub const COMPANY_ID: &str = "12345";
/// The built-in API key; survives every reset.
pub const DEFAULT_API_KEY: &str = "bamboohr-api-key";
/// The private key the fixture's webhook signs with (the sender takes any key: this is the one
/// tests and the e2e stack configure).
pub const WEBHOOK_SECRET: &str = "bamboohr-webhook-private-key";
/// Ada Lovelace: active, Sales, with a work e-mail.
pub const ACTIVE_SALES_ID: u64 = 101;
/// Grace Hopper: active, Engineering, no work e-mail.
pub const NO_EMAIL_ID: u64 = 102;
/// Alan Turing: Inactive, Terminated on 2026-11-30.
pub const TERMINATED_ID: u64 = 103;
/// Katherine Johnson: active, Sales, hired to start 14 days after the simulator started.
pub const FUTURE_HIRE_ID: u64 = 104;

/// `{base}/api/gateway.php/sim-company`: the `api_url` of a tenant pointing at this simulator.
pub fn api_url(sim_base: &str) -> String {
    format!("{}/bamboohr/api/gateway.php/{COMPANY_DOMAIN}", sim_base.trim_end_matches('/'))
}

/// BambooHR's start-up flags.
#[derive(Clone, Debug, clap::Args)]
#[group(id = "bamboohr_flags")]
pub struct Flags {
    /// The built-in API key. Never logged.
    #[arg(
        id = "bamboohr_api_key",
        long = "bamboohr-api-key",
        env = "SIM_BAMBOOHR_API_KEY",
        default_value = DEFAULT_API_KEY,
        hide_env_values = true
    )]
    pub api_key: Token,
}

impl Default for Flags {
    fn default() -> Self {
        Flags { api_key: DEFAULT_API_KEY.into() }
    }
}

impl VendorSim for State {
    fn new(config: &Config, fixture: Fixture) -> Self {
        State::build(config, fixture)
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
            let key = handlers::api_key(headers);
            return handlers::Limits::rejection(&self.limiter.exhausted(key.as_deref(), now_ms), now_ms);
        }
        let mut response = status.into_response();
        let reason = status.canonical_reason().unwrap_or("Error");
        if let Ok(value) = HeaderValue::from_str(reason) {
            response.headers_mut().insert("X-BambooHR-Error-Message", value);
        }
        response
    }

    fn router(_sim: Sim) -> Router<Sim> {
        Router::new()
            .route("/api/gateway.php/{company}/v1/employees/{id}", get(handlers::get_employee))
            .route("/api/gateway.php/{company}/v1/employees/{id}/", get(handlers::get_employee))
            .route("/_sim/send", post(sender::send))
            .method_not_allowed_fallback(|| async {
                handlers::ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
            })
            .fallback(|| async { handlers::ApiError::new(StatusCode::NOT_FOUND, "Not found") })
    }
}
