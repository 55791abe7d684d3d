//! Jira Cloud user and group management (stub).
//!
//! Users by `accountId`, groups by `groupId`, offset pagination (`startAt`/`maxResults`).
//! See `shared/vendor-guides/jira.txt`.
//!
//! Not simulated yet: every documented route answers 501 with a JSON body, so clients fail
//! loudly instead of silently. The shape (state with reset/seed/snapshot, knobs, a hook for
//! injected errors, a router) is the one every vendor module has; fill it in like `pipedrive.rs`.

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use crate::registry::{self, Vendor, VendorSim};
use crate::sim::Sim;
use crate::{Config, Fixture};

const VENDOR: Vendor = Vendor::Jira;

/// The tenant: nothing yet.
#[derive(Clone, Debug, Default)]
pub struct State {}

impl VendorSim for State {
    fn new(_config: &Config, _fixture: Fixture) -> Self {
        State {}
    }

    fn reset(&mut self, config: &Config, fixture: Fixture) {
        *self = State::new(config, fixture);
    }

    fn seed(&mut self, body: Value) -> Result<Value, String> {
        registry::stub_seed(VENDOR, &body)
    }

    fn snapshot(&self) -> Value {
        json!({ "users": [], "groups": [], "memberships": [] })
    }

    fn config(&self) -> Value {
        json!({})
    }

    fn configure(&mut self, patch: Value) -> Result<(), String> {
        registry::stub_configure(VENDOR, &patch)
    }

    fn injected_error(&self, _uri: &Uri, _headers: &HeaderMap, status: StatusCode, _now_ms: i64) -> Response {
        registry::plain_error(VENDOR, status)
    }

    fn router(_sim: Sim) -> Router<Sim> {
        Router::new()
            .route("/user", get(not_implemented).post(not_implemented).delete(not_implemented))
            .route("/user/search", get(not_implemented))
            .route("/users/search", get(not_implemented))
            .route("/user/groups", get(not_implemented))
            .route("/group/user", post(not_implemented).delete(not_implemented))
            .fallback(|| async { registry::plain_error(VENDOR, StatusCode::NOT_FOUND) })
    }
}

async fn not_implemented() -> Response {
    registry::not_implemented(VENDOR)
}
