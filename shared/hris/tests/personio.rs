//! Personio end to end in process: deliveries built and signed by the simulator's sender are
//! verified and parsed, and the details are read from the simulator's v2 API.

use std::time::Duration;

use chrono::{NaiveDate, Utc};
use lifecycle_hris::personio::{self, Personio};
use lifecycle_hris::{DeliveryKind, EmploymentStatus, FetchError, SignatureError, Source};
use lifecycle_vendor_sim::personio::{self as sim_personio, sender};
use lifecycle_vendor_sim::{build, Config, Running, Vendor};
use serde_json::json;

const SECRET: &str = "a-webhook-secret-the-test-picked";

async fn start() -> (Running, Personio) {
    let running = build(Config::ephemeral()).await.expect("simulator starts");
    let api_url = running.base_url(Vendor::Personio);
    let table = json!({ "tenants": [
        { "name": "other", "company_id": "9", "webhook_secret": "another-secret", "api_url": api_url,
          "client_id": "nobody", "client_secret": "nothing" },
        { "name": "acme", "company_id": sim_personio::COMPANY_ID, "webhook_secret": SECRET, "api_url": api_url,
          "client_id": sim_personio::CLIENT_ID, "client_secret": sim_personio::CLIENT_SECRET,
          "rate_limit": { "per_second": 50 } },
    ]});
    let source = personio::source(&table, Duration::from_secs(5)).expect("config is valid");
    (running, source)
}

#[tokio::test]
async fn a_signed_joiner_is_verified_parsed_and_read() {
    let (_sim, source) = start().await;
    let now = Utc::now();
    let (headers, body) =
        sender::delivery(SECRET, "employment.started", sim_personio::ACTIVE_SALES, sim_personio::COMPANY_ID, now);
    let verified = source.verify(&headers, &body, now).expect("the sender's signature verifies");
    assert_eq!(verified.tenant, "acme");
    let delivery = source.parse(&body).unwrap();
    assert_eq!(delivery.kind, DeliveryKind::Joined);
    assert_eq!(delivery.company_id, source.company_id("acme").unwrap());
    assert_eq!(delivery.employee_id.as_deref(), Some(sim_personio::ACTIVE_SALES));

    let record = source.fetch("acme", sim_personio::ACTIVE_SALES).await.unwrap();
    assert_eq!(record.email.as_deref(), Some("ada.lovelace@example.com"));
    assert_eq!((record.given_name.as_deref(), record.family_name.as_deref()), (Some("Ada"), Some("Lovelace")));
    assert_eq!(record.status, EmploymentStatus::Active);
    assert_eq!(record.department.as_deref(), Some("Sales"));
    assert_eq!(record.job_title.as_deref(), Some("Account Executive"));
    assert_eq!(record.hire_date, NaiveDate::from_ymd_opt(2024, 1, 15));
}

#[tokio::test]
async fn the_fixtures_edge_cases_come_back_as_lifecycle_needs_them() {
    let (_sim, source) = start().await;
    let no_mail = source.fetch("acme", sim_personio::WITHOUT_EMAIL).await.unwrap();
    assert_eq!(no_mail.email, None);
    let left = source.fetch("acme", sim_personio::TERMINATED).await.unwrap();
    assert_eq!(left.status, EmploymentStatus::Inactive);
    assert_eq!(left.termination_date, NaiveDate::from_ymd_opt(2026, 6, 30));
    let pending = source.fetch("acme", sim_personio::ONBOARDING).await.unwrap();
    assert_eq!(pending.status, EmploymentStatus::Pending);
    assert_eq!(pending.hire_date, NaiveDate::from_ymd_opt(2099, 1, 4));
}

#[tokio::test]
async fn tampered_wrong_secret_and_stale_deliveries_are_refused() {
    let (_sim, source) = start().await;
    let now = Utc::now();
    let (headers, body) = sender::delivery(SECRET, "person.updated", "1001", sim_personio::COMPANY_ID, now);
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    assert_eq!(source.verify(&headers, &tampered, now), Err(SignatureError::Mismatch));

    let (wrong, body) = sender::delivery("guessed", "person.updated", "1001", sim_personio::COMPANY_ID, now);
    assert_eq!(source.verify(&wrong, &body, now), Err(SignatureError::Mismatch));

    let old = now - chrono::Duration::minutes(10);
    let (stale, body) = sender::delivery(SECRET, "person.updated", "1001", sim_personio::COMPANY_ID, old);
    assert!(matches!(source.verify(&stale, &body, now), Err(SignatureError::Stale { .. })));
}

#[tokio::test]
async fn a_retry_is_the_same_delivery_and_another_event_is_not() {
    let (_sim, source) = start().await;
    let at = Utc::now();
    let (_, first) = sender::delivery(SECRET, "employment.updated", "1001", sim_personio::COMPANY_ID, at);
    let (_, again) = sender::delivery(SECRET, "employment.updated", "1001", sim_personio::COMPANY_ID, at);
    let (_, other) = sender::delivery(SECRET, "person.updated", "1001", sim_personio::COMPANY_ID, at);
    let key = |b: &[u8]| source.parse(b).unwrap().key;
    assert_eq!(key(&first), key(&again));
    assert_ne!(key(&first), key(&other));
}

#[tokio::test]
async fn unknown_people_wrong_credentials_and_throttling_are_typed() {
    let (sim, source) = start().await;
    assert_eq!(source.fetch("acme", "424242").await, Err(FetchError::NotFound("424242".into())));
    assert!(matches!(source.fetch("other", sim_personio::ACTIVE_SALES).await, Err(FetchError::Refused(_))));

    let http = reqwest::Client::new();
    let fault = json!({ "vendor": "personio", "path": "/v2/persons/**", "kind": "status", "status": 429, "count": 1 });
    http.post(format!("{}/_sim/faults", sim.url())).json(&fault).send().await.unwrap().error_for_status().unwrap();
    match source.fetch("acme", sim_personio::ACTIVE_SALES).await {
        Err(FetchError::Throttled { retry_after }) => assert_eq!(retry_after, Some(Duration::from_secs(1))),
        other => panic!("expected Throttled, got {other:?}"),
    }
    let fault = json!({ "vendor": "personio", "path": "/v2/persons/**", "kind": "status", "status": 503, "count": 1 });
    http.post(format!("{}/_sim/faults", sim.url())).json(&fault).send().await.unwrap().error_for_status().unwrap();
    let err = source.fetch("acme", sim_personio::ACTIVE_SALES).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    // Kept, then read once the API is back.
    assert!(source.fetch("acme", sim_personio::ACTIVE_SALES).await.is_ok());
}

#[tokio::test]
async fn a_token_near_its_end_is_renewed_before_use() {
    let mut config = Config::ephemeral();
    config.personio.token_ttl_secs = 1;
    let sim = build(config).await.unwrap();
    let table = json!({ "tenants": [{ "name": "acme", "company_id": sim_personio::COMPANY_ID,
        "webhook_secret": SECRET, "api_url": sim.base_url(Vendor::Personio),
        "client_id": sim_personio::CLIENT_ID, "client_secret": sim_personio::CLIENT_SECRET,
        "rate_limit": { "per_second": 50 } }]});
    let source = personio::source(&table, Duration::from_secs(5)).unwrap();
    assert!(source.fetch("acme", sim_personio::ACTIVE_SALES).await.is_ok());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The first token has expired at the simulator; a new one is asked for, not the old one sent.
    assert!(source.fetch("acme", sim_personio::ACTIVE_SALES).await.is_ok());
}
