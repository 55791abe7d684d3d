//! The simulator in process, and each vendor's connector pointed at it.

#![allow(dead_code)]

use lifecycle_domain::{Event, Workflow};
use lifecycle_engine::inspect::{Account, Plan};
use lifecycle_engine::{Connector, RunSpec};
use lifecycle_store::harness::Harness;
use lifecycle_vendor_sim::{Config, Running, Vendor};
use lifecycle_vendors::registry::Common;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

    /// With the connector's own limiter off (`rate_limit.enabled = false`: Calendly's 60 a minute
    /// would make each request take a second), and `extra` in its table as [`World::with`] has it.
    pub async fn unthrottled(vendor: VendorKind, extra: Value) -> Self {
        let mut table = json!({"rate_limit": {"enabled": false}});
        for (k, v) in extra.as_object().expect("a table") {
            table[k] = v.clone();
        }
        Self::with(vendor, table).await
    }

    /// Jira, its connector also knowing the simulator's SCIM directory [`JIRA_DIRECTORY`].
    pub async fn jira_with_directory() -> Self {
        let w = World::new(VendorKind::Jira).await;
        let mut table = table(VendorKind::Jira, &w.sim);
        let directory = format!("{}/jira/scim/directory/{JIRA_DIRECTORY}", w.sim.url());
        table["scim"] = json!({"base_url": directory, "token": "jira-scim-token"});
        let common = Common { http_timeout: Duration::from_secs(5), allow_plain_http: true };
        let connector = lifecycle_vendors::jira::connector(&table, &common).expect("a valid table");
        World { connector, ..w }
    }

    /// Runs `event` (the intake's JSON) at this world's vendor: its first attempt.
    pub async fn start(&self, event: &Value) -> lifecycle_store::harness::Attempted {
        self.harness.start(&*self.connector, event, self.vendor).await
    }

    /// The next attempt of `run_id`.
    pub async fn retry(&self, run_id: &str) -> lifecycle_store::harness::Attempted {
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
    /// `json!({"method": "POST", "path": "/api/v1/users", "kind": "apply_then_fail", "status": 500})`.
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

    /// Sets the tenant's knobs, `POST /_sim/config`'s body: e.g. `{"rate_limit": {"enabled": true}}`.
    pub fn configure(&self, patch: Value) {
        let vendor = self.sim_vendor();
        self.sim.sim.lock().tenants.get_mut(vendor).configure(patch).expect("the knobs are valid");
    }

    /// The tenant as the simulator holds it (`GET /_sim/state`'s entry for the vendor).
    pub fn state(&self) -> Value {
        self.sim.sim.lock().tenants.get(self.sim_vendor()).snapshot()
    }

    /// The tenant's user whose `field` is `value`, if any.
    pub fn user(&self, field: &str, value: &str) -> Option<Value> {
        self.state()["users"].as_array().expect("the tenant has users").iter().find(|u| u[field] == value).cloned()
    }

    /// Requests that could change something: everything but GETs (and CrowdStrike's token
    /// endpoint and its retrieveUsersGETV1, a `POST` that reads).
    pub fn writes(&self) -> u64 {
        let writes = self
            .requests()
            .into_iter()
            .filter(|(route, _)| !route.starts_with("GET ") && route != CS_TOKEN && route != CS_READ_USERS);
        writes.map(|(_, n)| n).sum()
    }

    /// Requests the simulator answered with a 429 for this vendor.
    pub fn rate_limited(&self) -> u64 {
        self.sim.sim.lock().journal.counters(self.sim_vendor()).rate_limited
    }

    /// The keys of `run_id`'s steps that wrote: its journal without the `reads` (a key, or a
    /// prefix when it ends in `*`).
    pub async fn written(&self, run_id: &str, reads: &[&str]) -> Vec<String> {
        let read = |k: &str| reads.iter().any(|r| r.strip_suffix('*').map_or(k == *r, |prefix| k.starts_with(prefix)));
        self.harness.keys(run_id).await.into_iter().filter(|k| !read(k)).collect()
    }

    /// The connector's directory, read once: the accounts, each progress report in order, and
    /// how long the read took.
    pub async fn read_directory(&self) -> Directory {
        let progress = Mutex::new(Vec::new());
        let started = Instant::now();
        let accounts =
            self.connector.directory(&|n: usize| progress.lock().unwrap().push(n)).await.expect("the directory reads");
        let took = started.elapsed();
        Directory { accounts, progress: progress.into_inner().unwrap(), took }
    }

    /// A request made by hand at the vendor's own API with the fixture's admin credential (as an
    /// admin in the vendor's web app would act): it must succeed; its JSON answer (Null when none).
    pub async fn by_hand(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let base = self.sim.base_url(self.sim_vendor());
        let http = reqwest::Client::new();
        let request = match self.vendor {
            VendorKind::Pipedrive => {
                http.request(method, format!("{base}{path}")).header("x-api-token", "pd-admin-token")
            }
            VendorKind::Crowdstrike => {
                let token: Value = http
                    .post(format!("{base}/oauth2/token"))
                    .form(&[("client_id", "cs-client-id"), ("client_secret", "cs-client-secret")])
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let request = http.request(method, format!("{base}{path}"));
                request.bearer_auth(token["access_token"].as_str().expect("a token"))
            }
            VendorKind::Jira => {
                http.request(method, format!("{base}{path}")).basic_auth("admin@sim.example", Some("jira-admin-token"))
            }
            VendorKind::Calendly => http.request(method, format!("{base}{path}")).bearer_auth("calendly-admin-token"),
            VendorKind::Circleci => {
                http.request(method, format!("{base}{path}")).header("Circle-Token", "circleci-admin-token")
            }
            VendorKind::Github => http
                .request(method, format!("{base}{path}"))
                .bearer_auth(GITHUB_TOKEN)
                .header("accept", "application/vnd.github+json")
                .header("x-github-api-version", "2022-11-28")
                .header("user-agent", "lifecycle-tests"),
        };
        let request = match body {
            Some(body) => request.json(&body),
            None => request,
        };
        let r = request.send().await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap_or(Value::Null)
    }
}

/// CrowdStrike's token endpoint: a request that changes nothing at the tenant.
pub const CS_TOKEN: &str = "POST /oauth2/token";

/// CrowdStrike's retrieveUsersGETV1: a `POST` that reads users.
pub const CS_READ_USERS: &str = "POST /user-management/entities/users/GET/v1";

/// The personal access token of `sim-admin`, the only owner of the simulator's `sim-org`.
pub const GITHUB_TOKEN: &str = "github-admin-token";

/// The teams lifecycle owns in the GitHub table (as the e2e stack has them); `sales-eng` is not one.
pub const GITHUB_MANAGED_TEAMS: [&str; 2] = ["platform", "security"];

/// The SCIM directory of the simulator's default Jira fixture.
pub const JIRA_DIRECTORY: &str = "d2b1f6c0-5a8e-4e3b-9c71-0f4a6b2e8d15";

/// One directory read: see [`World::read_directory`].
pub struct Directory {
    pub accounts: Vec<Account>,
    /// Each progress report (accounts read so far), in order.
    pub progress: Vec<usize>,
    pub took: Duration,
}

/// Accounts sorted by address.
pub fn sorted(mut accounts: Vec<Account>) -> Vec<Account> {
    accounts.sort_by(|a, b| a.email.cmp(&b.email));
    accounts
}

/// Request counts by route, as [`World::requests`] has them.
pub fn routes(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(r, n)| (r.to_string(), *n)).collect()
}

/// A set of names: roles, groups, workflows, as accounts and events list them.
pub fn names(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The run the harness would make of `event` at `vendor` (its workflow the event's), as the
/// executor hands it over.
pub fn spec(event: &Value, vendor: VendorKind) -> RunSpec {
    let workflow = Event::parse(event).expect("a valid event").event_type.workflow().expect("a workflow");
    spec_as(event, vendor, workflow)
}

/// [`spec`] with another workflow than the event's (e.g. Pipedrive's `reassign_deals`).
pub fn spec_as(event: &Value, vendor: VendorKind, workflow: Workflow) -> RunSpec {
    let parsed = Event::parse(event).expect("a valid event");
    let input = parsed.run_inputs().into_iter().find(|i| i.app.vendor() == vendor).expect("the event names the vendor");
    RunSpec { run_id: "plan".into(), event_id: "plan".into(), vendor, workflow, input, attempt: 1 }
}

/// The step keys of the plan's actions, in order.
pub fn steps(plan: &Plan) -> Vec<String> {
    plan.actions.iter().map(|a| a.step.clone()).collect()
}

/// The id of the Pipedrive user with `email`.
pub fn pipedrive_id(w: &World, email: &str) -> i64 {
    w.user("email", email).expect("the user exists")["id"].as_i64().unwrap()
}

/// The uid of the Falcon user `username`.
pub fn crowdstrike_uid(w: &World, username: &str) -> String {
    let user = w.user("username", username).unwrap_or_else(|| panic!("{username} exists"));
    user["uid"].as_str().unwrap().to_string()
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
        VendorKind::Github => {
            json!({"base_url": base, "token": GITHUB_TOKEN, "org": "sim-org", "managed_teams": GITHUB_MANAGED_TEAMS})
        }
    }
}

/// The contract's example joiner (docs/contract.md §1), every app as the contract has them
/// (a copy of `lifecycle_domain`'s and the e2e stack's, which a test binary cannot share).
pub fn contract_joiner() -> Value {
    json!({
      "type": "joiner",
      "occurred_at": "2026-11-22T09:00:00Z",
      "employee": {"id": "E-1001", "email": "ada@example.com", "given_name": "Ada", "family_name": "Lovelace"},
      "successor_email": "grace@example.com",
      "apps": {
        "pipedrive":   { "role": "Sales Rep" },
        "crowdstrike": { "roles": ["falcon_analyst"] },
        "jira":        { "products": ["jira-software"], "groups": ["276f955c-63d7-42c8-9520-92d01dca0625"] },
        "calendly":    {},
        "circleci":    { "login": "ada-gh" },
        "github":      { "login": "ada-gh", "role": "member", "teams": ["platform"] }
      }
    })
}

/// The same person leaving, successor Grace (a user of the simulator's fixtures).
pub fn contract_leaver() -> Value {
    let mut e = contract_joiner();
    e["type"] = json!("leaver");
    e["occurred_at"] = json!("2026-11-22T18:00:00Z");
    e
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
