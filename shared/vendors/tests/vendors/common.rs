//! The simulator in process, and each vendor's connector pointed at it.

#![allow(dead_code)]

use lifecycle_engine::harness::Harness;
use lifecycle_engine::Connector;
use lifecycle_vendor_sim::{Config, Running, Vendor};
use lifecycle_vendors::registry::Common;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

pub use lifecycle_domain::VendorKind;

/// The simulator (default fixture, its rate limits off: a test that wants a vendor's
/// budget turns it on with the tenant's `configure`), an in-memory journal, and the
/// connector of `vendor` with the fixture's credentials (the connector's own limiter as
/// the vendor's table sets it).
pub struct World {
    pub sim: Running,
    pub harness: Harness,
    pub connector: Arc<dyn Connector>,
    pub vendor: VendorKind,
}

impl World {
    pub async fn new(vendor: VendorKind) -> Self {
        Self::with(vendor, json!({})).await
    }

    /// With `extra` merged into the vendor's `[vendors.<name>]` table.
    pub async fn with(vendor: VendorKind, extra: Value) -> Self {
        let mut config = Config::ephemeral();
        // Off: no test meets a 429 it did not ask for (a fault, or the budget turned on).
        config.no_rate_limits = true;
        let sim = lifecycle_vendor_sim::build(config).await.expect("the simulator starts");
        let mut table = table(vendor, &sim);
        if let (Some(t), Some(e)) = (table.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                t.insert(k.clone(), v.clone());
            }
        }
        let common = Common { http_timeout: Duration::from_secs(5), allow_plain_http: true };
        let connector = lifecycle_vendors::registry::connector(vendor, &table, &common)
            .expect("the connector's configuration is valid");
        World { sim, harness: Harness::new().await, connector, vendor }
    }

    /// Runs `event` (the intake's JSON) at this world's vendor: its first attempt.
    pub async fn start(&self, event: &Value) -> lifecycle_engine::harness::Attempted {
        self.harness.start(&*self.connector, event, self.vendor).await
    }

    /// The next attempt of `run_id`.
    pub async fn retry(&self, run_id: &str) -> lifecycle_engine::harness::Attempted {
        self.harness.retry(&*self.connector, run_id).await
    }

    pub fn sim_vendor(&self) -> Vendor {
        sim_vendor(self.vendor)
    }

    /// Requests the simulator has served for this vendor, by route template.
    pub fn requests(&self) -> BTreeMap<String, u64> {
        self.sim.sim.lock().journal.counters(self.sim_vendor()).by_route
    }

    /// Requests served for this vendor, all routes (the token endpoint included).
    pub fn request_count(&self) -> u64 {
        self.sim.sim.lock().journal.counters(self.sim_vendor()).requests
    }

    /// The requests served for this vendor, by route, since `before` (a [`World::requests`]
    /// taken earlier): what one run cost. Routes not requested are left out.
    pub fn requests_since(&self, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
        self.requests()
            .into_iter()
            .map(|(route, n)| {
                let was = before.get(&route).copied().unwrap_or(0);
                (route, n - was)
            })
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Injects a fault, `POST /_sim/faults`'s body without `vendor`: e.g.
    /// `json!({"method": "POST", "path": "/users", "kind": "apply_then_fail", "status": 500})`.
    pub fn fault(&self, mut spec: Value) {
        spec["vendor"] = self.sim_vendor().name().into();
        let spec = serde_json::from_value(spec).expect("a fault spec");
        self.sim.sim.lock().faults.add(spec).expect("the fault is valid");
    }

    /// Seeds the vendor's tenant with `/_sim/seed`'s per-vendor body.
    pub fn seed(&self, body: Value) {
        let vendor = self.sim_vendor();
        self.sim.sim.lock().tenants.get_mut(vendor).seed(body).expect("the seed is valid");
    }
}

/// The simulator's vendor of the same name.
pub fn sim_vendor(v: VendorKind) -> Vendor {
    Vendor::from_name(v.as_str()).unwrap_or_else(|| panic!("the simulator plays {v}"))
}

/// The vendor's table with the default fixture's credentials, as the e2e stack writes it.
fn table(vendor: VendorKind, sim: &Running) -> Value {
    let base = sim.base_url(sim_vendor(vendor));
    match vendor {
        VendorKind::Pipedrive => json!({"base_url": base, "api_token": "pd-admin-token"}),
        VendorKind::Crowdstrike => {
            json!({"base_url": base, "client_id": "cs-client-id", "client_secret": "cs-client-secret"})
        }
        VendorKind::Jira => {
            json!({"base_url": base, "email": "admin@sim.example", "api_token": "jira-admin-token"})
        }
        VendorKind::Calendly => json!({"base_url": base, "token": "calendly-admin-token", "plan": "standard"}),
        VendorKind::Circleci => {
            json!({"base_url": base, "token": "circleci-admin-token", "org_slug": "gh/sim-org"})
        }
    }
}

/// A contract-shaped event of `kind` (joiner, mover, leaver) for `email`, touching `vendor` with `app`.
pub fn event(kind: &str, email: &str, vendor: VendorKind, app: Value) -> Value {
    let local = email.split('@').next().unwrap_or(email);
    json!({
        "type": kind,
        "occurred_at": "2026-11-22T09:00:00Z",
        "employee": {"id": format!("E-{local}"), "email": email, "given_name": "Test", "family_name": local},
        "apps": { vendor.as_str(): app }
    })
}
