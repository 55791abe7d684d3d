//! HR systems' own signed webhooks (issue 27, docs/contract.md §2) over the real processes:
//! each source's simulator signs and sends its deliveries as the vendor does (its
//! `/_sim/send`), the producer verifies and keeps them, reads the employee from the simulated
//! HRIS API, and the mapped joiner, mover and leaver become runs at the right vendors.
//!
//! Per source: a tampered body, a wrong secret (BambooHR: a stale timestamp) → 401 and
//! nothing stored; the same delivery five times → one delivery and one event; a second
//! delivery about the same hire → still one joiner; a future hire → runs scheduled for the
//! first day; the HRIS API answering 429 and 503 while details are read → kept and processed
//! later; a person without a work e-mail → a delivery that needs a person, retried by an
//! operator; a mover; a leaver.

use chrono::{DateTime, NaiveDate, Utc};
use lifecycle_domain::{RunState, VendorKind, Workflow};
use lifecycle_e2e::sim::pd_users;
use lifecycle_e2e::stack::{
    ADMIN_PASSWORD, ADMIN_USER, BAMBOOHR_COMPANY_ID, BAMBOOHR_WEBHOOK_SECRET, HIBOB_COMPANY_ID, HIBOB_WEBHOOK_SECRET,
    PERSONIO_COMPANY_ID, PERSONIO_WEBHOOK_SECRET,
};
use lifecycle_e2e::{both_databases, eventually, Backend, Stack, StackOptions};
use lifecycle_store::entity::hris_delivery::DeliveryState;
use lifecycle_store::hris::DeliveryFilter;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{json, Value};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);

/// What differs between the sources in these tests.
struct Source {
    name: &'static str,
    secret: &'static str,
    company: &'static str,
    joined: &'static str,
    updated: &'static str,
    left: &'static str,
    /// Active, Sales, with a work e-mail.
    active: &'static str,
    active_email: &'static str,
    no_email: &'static str,
    /// Hired, starting on `future_start`.
    future: &'static str,
    future_email: &'static str,
    /// The employee read's path under the source's prefix (for injected faults).
    read_path: &'static str,
    /// The sender's `timestamp` for a delivery sent at `t`, as the source writes it.
    timestamp: fn(DateTime<Utc>) -> String,
}

const BAMBOOHR: Source = Source {
    name: "bamboohr",
    secret: BAMBOOHR_WEBHOOK_SECRET,
    company: BAMBOOHR_COMPANY_ID,
    joined: "employee.created",
    updated: "employee.updated",
    left: "employee.deleted",
    active: "101",
    active_email: "ada.lovelace@example.com",
    no_email: "102",
    future: "104",
    future_email: "katherine.johnson@example.com",
    read_path: "/api/gateway.php/sim-company/v1/employees/**",
    timestamp: |t| t.timestamp().to_string(),
};

const HIBOB: Source = Source {
    name: "hibob",
    secret: HIBOB_WEBHOOK_SECRET,
    company: HIBOB_COMPANY_ID,
    joined: "employee.joined",
    updated: "employee.updated",
    left: "employee.left",
    active: "3332883894235038486",
    active_email: "ada@example.com",
    no_email: "3332883894235038487",
    future: "3332883894235038489",
    future_email: "margaret@example.com",
    read_path: "/v1/people/**",
    // As Bob writes `triggeredAt`: no offset, microseconds.
    timestamp: |t| t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string(),
};

const PERSONIO: Source = Source {
    name: "personio",
    secret: PERSONIO_WEBHOOK_SECRET,
    company: PERSONIO_COMPANY_ID,
    joined: "employment.started",
    updated: "employment.updated",
    left: "employment.terminated",
    active: "1001",
    active_email: "ada.lovelace@example.com",
    no_email: "1002",
    future: "1004",
    future_email: "katherine.johnson@example.com",
    read_path: "/v2/persons/**",
    timestamp: |t| t.to_rfc3339(),
};

struct Hr<'a> {
    stack: Stack,
    src: &'a Source,
}

impl Hr<'_> {
    /// The simulator's test sender: builds, signs and posts a delivery; the receiver's status and body.
    async fn send(&self, kind: &str, employee: &str, extra: Value) -> (u16, Value) {
        let mut body = json!({
            "url": format!("{}/v1/hr/{}", self.stack.producer_url, self.src.name),
            "secret": self.src.secret,
            "type": kind,
            "employee_id": employee,
            "company_id": self.src.company,
        });
        for (k, v) in extra.as_object().into_iter().flatten() {
            body[k] = v.clone();
        }
        let r = self
            .stack
            .http
            .post(format!("{}/{}/_sim/send", self.stack.sim_url, self.src.name))
            .json(&body)
            .send()
            .await
            .expect("the simulator answers");
        assert!(r.status().is_success(), "the sender failed: {}", r.text().await.unwrap_or_default());
        let answer: Value = r.json().await.expect("the sender answers JSON");
        let status = answer["status"].as_u64().expect("the receiver's status") as u16;
        let inner = match &answer["body"] {
            Value::String(s) => serde_json::from_str(s).unwrap_or(Value::String(s.clone())),
            other => other.clone(),
        };
        (status, inner)
    }

    async fn send_ok(&self, kind: &str, employee: &str, extra: Value) -> Value {
        let (status, body) = self.send(kind, employee, extra).await;
        assert_eq!(status, 200, "{} {kind} for {employee}: {body}\n{}", self.src.name, self.stack.logs());
        body
    }

    async fn deliveries(&self) -> Vec<lifecycle_store::hris::Delivery> {
        let f = DeliveryFilter { source: Some(self.src.name.into()), ..DeliveryFilter::default() };
        lifecycle_store::hris::list(&self.stack.store, &f).await.expect("listing deliveries")
    }

    /// Waits until delivery `id` has left `pending`.
    async fn settled(&self, id: &str) -> lifecycle_store::hris::Delivery {
        eventually(WAIT, &format!("{} delivery {id} processed", self.src.name), || async {
            let d = lifecycle_store::hris::get(&self.stack.store, id).await.unwrap().expect("the delivery exists");
            (d.state != DeliveryState::Pending).then_some(d)
        })
        .await
    }

    /// This source's events, oldest first: (id, type, payload).
    async fn events(&self) -> Vec<(String, String, Value)> {
        let backend = self.stack.store.get_database_backend();
        let sql = format!(
            "SELECT id, event_type, payload FROM events WHERE source = 'hris:{}' ORDER BY received_at, id",
            self.src.name
        );
        let rows = self.stack.store.query_all(Statement::from_string(backend, sql)).await.expect("events");
        rows.iter()
            .map(|r| {
                let payload: String = r.try_get("", "payload").unwrap();
                (
                    r.try_get("", "id").unwrap(),
                    r.try_get("", "event_type").unwrap(),
                    serde_json::from_str(&payload).unwrap(),
                )
            })
            .collect()
    }

    /// The runs of the delivery's events: (vendor, workflow, state, effective_at).
    async fn runs_of(
        &self,
        d: &lifecycle_store::hris::Delivery,
    ) -> Vec<(VendorKind, Workflow, RunState, Option<DateTime<Utc>>)> {
        let ids: Vec<String> = serde_json::from_str(d.event_ids.as_deref().unwrap_or("[]")).unwrap();
        let mut out = Vec::new();
        for id in ids {
            for r in self.stack.runs_of(&id).await {
                out.push((r.vendor, r.workflow, r.state, r.effective_at));
            }
        }
        out
    }
}

fn delivery_id(body: &Value) -> String {
    body["delivery_id"].as_str().unwrap_or_else(|| panic!("no delivery id in {body}")).to_string()
}

async fn start(backend: Backend, src: &'static Source) -> Hr<'static> {
    let stack = Stack::start(StackOptions::new(backend, &format!("hris-{}", src.name))).await;
    Hr { stack, src }
}

/// Refusals: nothing of a delivery whose signature does not hold is kept.
async fn refusals(hr: &Hr<'_>) {
    let src = hr.src;
    for (what, extra) in [
        ("a tampered body", json!({"tamper": "body"})),
        ("a signature with another key", json!({"tamper": "signature"})),
        ("a wrong secret", json!({"secret": "not-the-configured-secret-0123456789"})),
    ] {
        let (status, body) = hr.send(src.joined, src.active, extra).await;
        assert_eq!(status, 401, "{}: {what} → {body}", src.name);
        assert_eq!(body["status"], 401, "a problem body: {body}");
    }
    // Another company's delivery signed with this tenant's secret. Past three wrong
    // signatures from one address the listener's throttle answers 429 (the hardening rules).
    let (status, body) = hr.send(src.joined, src.active, json!({"company_id": "999999"})).await;
    assert!(status == 401 || status == 429, "{}: another company → {status} {body}", src.name);
    assert!(hr.deliveries().await.is_empty(), "nothing stored");
    assert_eq!(hr.stack.count("hris_deliveries").await, 0);
}

/// The joiner, sent five times as the same delivery, then a second delivery about the same hire.
async fn joiner(hr: &Hr<'_>) -> String {
    let src = hr.src;
    let ts = (src.timestamp)(Utc::now());
    let first = hr.send_ok(src.joined, src.active, json!({"timestamp": ts})).await;
    let id = delivery_id(&first);
    for _ in 0..4 {
        let again = hr.send_ok(src.joined, src.active, json!({"timestamp": ts})).await;
        assert_eq!(delivery_id(&again), id, "the same delivery: {again}");
        assert_eq!(again["status"], "duplicate");
    }
    let d = hr.settled(&id).await;
    assert_eq!(d.state, DeliveryState::Processed, "{d:?}\n{}", hr.stack.logs());
    let runs = hr.runs_of(&d).await;
    let mut at: Vec<(VendorKind, Workflow)> = runs.iter().map(|r| (r.0, r.1)).collect();
    at.sort_by_key(|(v, _)| v.as_str());
    assert_eq!(at, [(VendorKind::Calendly, Workflow::Joiner), (VendorKind::Pipedrive, Workflow::Joiner)]);
    assert!(runs.iter().all(|r| r.3.is_none()), "hired in the past: at once");

    // BambooHR's `created` then `updated` (and any source's later delivery about the same hire).
    let later = (src.timestamp)(Utc::now() + chrono::Duration::seconds(1));
    let second = hr.send_ok(src.updated, src.active, json!({"timestamp": later})).await;
    let d2 = hr.settled(&delivery_id(&second)).await;
    assert_eq!(d2.state, DeliveryState::Processed);
    let events = hr.events().await;
    assert_eq!(events.len(), 1, "one joiner: {events:?}");
    assert_eq!(events[0].1, "joiner");
    assert_eq!(events[0].2["employee"]["id"], format!("{}:sim:{}", src.name, src.active));
    assert_eq!(events[0].2["apps"]["pipedrive"]["role"], "Sales Rep");

    let runs = hr.stack.wait_event(&events[0].0, WAIT).await;
    assert!(runs.iter().all(|r| r.state == RunState::Succeeded), "{runs:?}\n{}", hr.stack.logs());
    let state = hr.stack.sim_state().await;
    assert_eq!(pd_users(&state, src.active_email).len(), 1, "the Pipedrive account exists");
    events[0].0.clone()
}

/// A hire not started yet, read while the HRIS API answers 429 then 503: kept, then a joiner
/// scheduled for their first day at 00:00 UTC.
async fn future_hire_through_a_failing_api(hr: &Hr<'_>, start: NaiveDate) {
    let src = hr.src;
    // A 429 says when the source's window ends (up to a minute at HiBob and BambooHR): a
    // 2-second window keeps the wait it asks for, and the test, short.
    hr.stack.sim_config(json!({ src.name: {"rate_limit": {"window_ms": 2000}} })).await;
    for status in [429, 503] {
        hr.stack
            .sim_fault(
                json!({"vendor": src.name, "path": src.read_path, "kind": "status", "status": status, "count": 1}),
            )
            .await;
    }
    let body = hr.send_ok(src.joined, src.future, json!({})).await;
    let id = delivery_id(&body);
    let d = hr.settled(&id).await;
    assert_eq!(d.state, DeliveryState::Processed, "{d:?}");
    assert!(d.attempts >= 3, "read three times (429, 503, then the record): {d:?}");
    let first_day = start.and_hms_opt(0, 0, 0).unwrap().and_utc();
    let runs = hr.runs_of(&d).await;
    assert!(!runs.is_empty());
    for (vendor, workflow, state, effective_at) in &runs {
        assert_eq!((*workflow, *state), (Workflow::Joiner, RunState::Scheduled), "{vendor}");
        assert_eq!(*effective_at, Some(first_day), "{vendor}");
    }
    let events = hr.events().await;
    let joiner =
        events.iter().find(|e| e.2["employee"]["email"] == src.future_email).expect("the future hire's joiner");
    assert_eq!(joiner.2["effective_at"].as_str().map(|s| s.parse::<DateTime<Utc>>().unwrap()), Some(first_day));
}

/// A person without a work e-mail needs a person, shown with the raw delivery; an operator's
/// retry processes it again (here it needs a person again: the record is unchanged).
async fn needs_a_person(hr: &Hr<'_>) {
    let src = hr.src;
    let body = hr.send_ok(src.joined, src.no_email, json!({})).await;
    let id = delivery_id(&body);
    let d = hr.settled(&id).await;
    assert_eq!(d.state, DeliveryState::NeedsPerson, "{d:?}");
    assert!(d.outcome.as_deref().unwrap_or("").contains("no work e-mail"), "{d:?}");
    assert!(d.body.contains(src.no_email), "the raw delivery is kept: {}", d.body);

    // The console's HR deliveries page shows it with why and the raw delivery.
    let page = hr
        .stack
        .http
        .get(format!("{}/hr", hr.stack.admin_url))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .send()
        .await
        .expect("the console answers");
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    let shown = html.split("<h2>Recent</h2>").next().unwrap();
    assert!(shown.contains(&id) && shown.contains("no work e-mail") && shown.contains(src.no_email), "{html}");

    let (status, api) = hr.stack.admin_get("/api/v1/hr/deliveries?state=needs_person").await;
    assert_eq!(status, 200, "{api}");
    let listed = api.as_array().unwrap().iter().find(|d| d["id"] == id.as_str()).expect("listed by the admin API");
    assert_eq!(listed["state"], "needs_person");
    assert!(listed["body"].as_str().unwrap().contains(src.no_email), "{listed}");

    let out = hr.stack.ctl(&["hr", "deliveries", "list", "--state", "needs_person", "--json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let listed = out.json();
    assert!(listed.as_array().unwrap().iter().any(|d| d["id"] == id.as_str()), "{listed}");
    let out = hr.stack.ctl(&["hr", "deliveries", "retry", &id, "--reason", "checked the record"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let d = hr.settled(&id).await;
    assert_eq!(d.state, DeliveryState::NeedsPerson);
    assert!(d.attempts >= 2, "processed again: {d:?}");

    // And from the console: the Retry form (its CSRF token names the delivery).
    let console = |path: String| hr.stack.http.get(path).basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD));
    let html = console(format!("{}/hr", hr.stack.admin_url)).send().await.unwrap().text().await.unwrap();
    let form = html.split(&format!("action=\"/hr/{id}/retry\"")).nth(1).expect("a Retry form for the delivery");
    let token = form.split("name=\"csrf\" value=\"").nth(1).and_then(|t| t.split('"').next()).expect("its token");
    let post = |csrf: String| {
        hr.stack
            .http
            .post(format!("{}/hr/{id}/retry", hr.stack.admin_url))
            .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
            .form(&[("csrf", csrf), ("reason", "asked HR to add the address".to_string())])
            .send()
    };
    let forged = post("not-a-token".into()).await.unwrap();
    assert_eq!(forged.status().as_u16(), 403, "a form without its token does nothing");
    let done = post(token.to_string()).await.unwrap();
    assert_eq!(done.status().as_u16(), 200, "redirected back to the page");
    assert!(done.text().await.unwrap().contains("due again"));
    let again = eventually(WAIT, "processed after the console's retry", || async {
        let d = lifecycle_store::hris::get(&hr.stack.store, &id).await.unwrap().unwrap();
        (d.state == DeliveryState::NeedsPerson && d.attempts >= 3).then_some(d)
    })
    .await;
    assert!(again.outcome.unwrap().contains("no work e-mail"));
    let audit = hr.stack.ctl(&["audit", "list", "--json"]).await.json();
    let retries = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "hris.delivery.retry" && e["target_id"] == id.as_str());
    assert_eq!(retries.count(), 2, "both retries audited: {audit}");
}

/// The joiner's Pipedrive role becomes "Sales Manager": a mover at Pipedrive.
async fn mover(hr: &mut Hr<'_>) {
    let src = hr.src;
    match src.name {
        // BambooHR's simulator replaces a seeded employee: Ada is promoted at the source.
        "bamboohr" => {
            hr.stack
                .sim_seed(json!({"bamboohr": {"employees": [{
                    "id": 101, "firstName": "Ada", "lastName": "Lovelace", "workEmail": src.active_email,
                    "department": "Sales", "jobTitle": "Sales Manager", "location": "London",
                    "employmentHistoryStatus": "Full-Time", "hireDate": "2024-03-01"
                }]}}))
                .await;
        }
        // HiBob's and Personio's simulators keep a seeded person as seeded: the rules change
        // instead (Sales now gives "Sales Manager"), which a producer reads at start-up.
        _ => {
            hr.stack.producer.take().expect("a producer").terminate(Duration::from_secs(10));
            hr.stack.set_env(
                "LIFECYCLE_HRIS__RULES",
                r#"[{when={department="Sales"},apps={pipedrive={role="Sales Manager"}}}]"#,
            );
            hr.stack.start_producer();
        }
    }
    let body = hr.send_ok(src.updated, src.active, json!({})).await;
    let d = hr.settled(&delivery_id(&body)).await;
    assert_eq!(d.state, DeliveryState::Processed, "{d:?}");
    let runs = hr.runs_of(&d).await;
    let at: Vec<(VendorKind, Workflow)> = runs.iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(at, [(VendorKind::Pipedrive, Workflow::Mover)], "{runs:?}");
    let events = hr.events().await;
    let mover = events.iter().find(|e| e.1 == "mover").expect("a mover");
    assert_eq!(mover.2["apps"]["pipedrive"]["role"], "Sales Manager");
    let runs = hr.stack.wait_event(&mover.0, WAIT).await;
    assert!(runs.iter().all(|r| r.state == RunState::Succeeded), "{runs:?}");
}

/// The person leaves: a leaver of everything the joiner gave.
async fn leaver(hr: &Hr<'_>) {
    let src = hr.src;
    let mut expect_at = None;
    let kind = match src.name {
        // Terminated at the source with a last day ahead: `updated`, effective the day after.
        "bamboohr" => {
            let last_day = Utc::now().date_naive() + chrono::Duration::days(10);
            hr.stack
                .sim_seed(json!({"bamboohr": {"employees": [{
                    "id": 101, "firstName": "Ada", "lastName": "Lovelace", "workEmail": src.active_email,
                    "department": "Sales", "jobTitle": "Sales Manager", "location": "London",
                    "status": "Inactive", "employmentHistoryStatus": "Terminated", "hireDate": "2024-03-01",
                    "terminationDate": last_day.to_string()
                }]}}))
                .await;
            expect_at = Some((last_day + chrono::Duration::days(1)).and_hms_opt(0, 0, 0).unwrap().and_utc());
            src.updated
        }
        // HiBob's `employee.left` and Personio's `employment.terminated` fire when it takes effect.
        _ => src.left,
    };
    // Not in the same second as the mover's `updated` (BambooHR's timestamp has whole seconds).
    let ts = (src.timestamp)(Utc::now() + chrono::Duration::seconds(2));
    let body = hr.send_ok(kind, src.active, json!({"timestamp": ts})).await;
    let d = hr.settled(&delivery_id(&body)).await;
    assert_eq!(d.state, DeliveryState::Processed, "{d:?}");
    let mut runs = hr.runs_of(&d).await;
    runs.sort_by_key(|r| r.0.as_str());
    let at: Vec<(VendorKind, Workflow)> = runs.iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(at, [(VendorKind::Calendly, Workflow::Leaver), (VendorKind::Pipedrive, Workflow::Leaver)]);
    for r in &runs {
        assert_eq!(r.3, expect_at, "{r:?}");
        if expect_at.is_some() {
            assert_eq!(r.2, RunState::Scheduled);
        }
    }
    if expect_at.is_none() {
        let events = hr.events().await;
        let leaver = events.iter().find(|e| e.1 == "leaver").expect("a leaver");
        let runs = hr.stack.wait_event(&leaver.0, WAIT).await;
        assert!(runs.iter().all(|r| r.state == RunState::Succeeded), "{runs:?}");
        let state = hr.stack.sim_state().await;
        let user = pd_users(&state, src.active_email)[0];
        assert_eq!(user["active_flag"], false, "deactivated in Pipedrive: {user}");
    }
}

async fn each_source(backend: Backend, src: &'static Source, future_start: NaiveDate) -> Hr<'static> {
    let mut hr = start(backend, src).await;
    refusals(&hr).await;
    joiner(&hr).await;
    future_hire_through_a_failing_api(&hr, future_start).await;
    needs_a_person(&hr).await;
    mover(&mut hr).await;
    leaver(&hr).await;
    hr
}

async fn bamboohr_joiner_mover_leaver(backend: Backend) {
    // The simulator hires Katherine to start 14 days after it started (today, here).
    let start = Utc::now().date_naive() + chrono::Duration::days(14);
    let hr = each_source(backend, &BAMBOOHR, start).await;
    // A stale timestamp (past the 5-minute window) is refused and not kept.
    let before = hr.stack.count("hris_deliveries").await;
    let stale = (Utc::now() - chrono::Duration::minutes(10)).timestamp().to_string();
    let (status, body) = hr.send(BAMBOOHR.updated, BAMBOOHR.active, json!({"timestamp": stale})).await;
    // 401, or 429 from the throttle that still counts the refusals above.
    assert!(status == 401 || status == 429, "{status} {body}");
    assert_eq!(hr.stack.count("hris_deliveries").await, before, "nothing stored");
}

async fn hibob_joiner_mover_leaver(backend: Backend) {
    let hr = each_source(backend, &HIBOB, NaiveDate::from_ymd_opt(2027, 1, 4).unwrap()).await;
    // The ping test Bob sends when a webhook is set up: 200, nothing kept.
    let before = hr.stack.count("hris_deliveries").await;
    let (status, body) = hr.send("ping", "", json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(hr.stack.count("hris_deliveries").await, before, "nothing stored");
}

async fn personio_joiner_mover_leaver(backend: Backend) {
    each_source(backend, &PERSONIO, NaiveDate::from_ymd_opt(2099, 1, 4).unwrap()).await;
}

both_databases!(bamboohr_joiner_mover_leaver, hibob_joiner_mover_leaver, personio_joiner_mover_leaver);
