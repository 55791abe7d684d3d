//! HiBob end to end in process: deliveries built and signed by the simulator's sender are
//! verified and parsed, and the details are fetched from the simulator's People API.

use std::time::Duration;

use chrono::{NaiveDate, Utc};
use lifecycle_hris::hibob;
use lifecycle_hris::{DeliveryKind, EmploymentStatus, FetchError, SignatureError, Source};
use lifecycle_vendor_sim::hibob::{self as sim_bob, sender};
use lifecycle_vendor_sim::{build, Config, Running, Vendor};
use serde_json::json;

const SECRET: &str = "a-webhook-secret-the-test-picked";

async fn start() -> (Running, hibob::HiBob) {
    let running = build(Config::ephemeral()).await.expect("simulator starts");
    let table = json!({ "tenants": [
        { "name": "other", "company_id": "1", "webhook_secret": "another-secret",
          "api_url": format!("{}/v1", running.base_url(Vendor::Hibob)),
          "service_user_id": "nobody", "service_user_token": "nothing" },
        { "name": "acme", "company_id": sim_bob::COMPANY_ID, "webhook_secret": SECRET,
          "api_url": format!("{}/v1", running.base_url(Vendor::Hibob)),
          "service_user_id": sim_bob::SERVICE_USER_ID, "service_user_token": sim_bob::SERVICE_USER_TOKEN,
          "rate_limit": { "per_second": 20 } },
    ]});
    let source = hibob::source(&table, Duration::from_secs(5)).expect("config is valid");
    (running, source)
}

fn send(kind: &str, employee: &str) -> sender::Send {
    sender::Send {
        url: String::new(),
        secret: SECRET.into(),
        kind: kind.into(),
        employee_id: employee.into(),
        company_id: sim_bob::COMPANY_ID.into(),
        timestamp: None,
        tamper: None,
    }
}

#[tokio::test]
async fn a_signed_joiner_is_verified_parsed_and_its_person_fetched() {
    let (_sim, bob) = start().await;
    let (headers, body) = sender::delivery(&send("employee.joined", sim_bob::ACTIVE_SALES_ID));
    let verified = bob.verify(&headers, &body, Utc::now()).expect("signed with acme's secret");
    assert_eq!(verified.tenant, "acme");
    let delivery = bob.parse(&body).unwrap();
    assert_eq!(delivery.kind, DeliveryKind::Joined);
    assert_eq!(Some(delivery.company_id.as_str()), bob.company_id("acme"));
    let employee = delivery.employee_id.expect("an employee");
    let record = bob.fetch("acme", &employee).await.expect("the person is read");
    assert_eq!(record.email.as_deref(), Some(sim_bob::ACTIVE_SALES_EMAIL));
    assert_eq!(record.given_name.as_deref(), Some("Ada"));
    assert_eq!(record.department.as_deref(), Some("Sales"));
    assert_eq!(record.location.as_deref(), Some("London"));
    assert_eq!(record.status, EmploymentStatus::Active);
    assert_eq!(record.hire_date, NaiveDate::from_ymd_opt(2024, 3, 1));
}

#[tokio::test]
async fn a_leaver_a_future_joiner_and_a_person_without_email_read_as_they_are() {
    let (_sim, bob) = start().await;
    let left = bob.fetch("acme", sim_bob::TERMINATED_ID).await.unwrap();
    assert_eq!(left.status, EmploymentStatus::Inactive);
    assert_eq!(left.termination_date, NaiveDate::from_ymd_opt(2026, 10, 31));
    let hired = bob.fetch("acme", sim_bob::FUTURE_JOINER_ID).await.unwrap();
    assert_eq!(hired.status, EmploymentStatus::Pending);
    assert_eq!(hired.hire_date, NaiveDate::from_ymd_opt(2027, 1, 4));
    let no_email = bob.fetch("acme", sim_bob::NO_EMAIL_ID).await.unwrap();
    assert_eq!(no_email.email, None);
}

#[tokio::test]
async fn tampered_bodies_and_other_secrets_are_refused() {
    let (_sim, bob) = start().await;
    let mut tampered = send("employee.left", sim_bob::TERMINATED_ID);
    tampered.tamper = Some(sender::Tamper::Body);
    let (headers, body) = sender::delivery(&tampered);
    assert_eq!(bob.verify(&headers, &body, Utc::now()), Err(SignatureError::Mismatch));
    tampered.tamper = Some(sender::Tamper::Signature);
    let (headers, body) = sender::delivery(&tampered);
    assert_eq!(bob.verify(&headers, &body, Utc::now()), Err(SignatureError::Mismatch));
}

#[tokio::test]
async fn a_retry_is_the_same_delivery_and_a_ping_is_a_ping() {
    let (_sim, bob) = start().await;
    let mut first = send("employee.updated", sim_bob::ACTIVE_SALES_ID);
    first.timestamp = Some("2026-12-07T09:00:00.123456".into());
    let (_, a) = sender::delivery(&first);
    let (_, b) = sender::delivery(&first);
    assert_eq!(bob.parse(&a).unwrap().key, bob.parse(&b).unwrap().key);
    let (headers, ping) = sender::delivery(&send("ping", ""));
    assert_eq!(bob.verify(&headers, &ping, Utc::now()).unwrap().tenant, "acme");
    assert_eq!(bob.parse(&ping).unwrap().kind, DeliveryKind::Ping);
}

#[tokio::test]
async fn unknown_people_wrong_credentials_and_throttling_are_typed() {
    let (sim, bob) = start().await;
    assert_eq!(bob.fetch("acme", "42").await, Err(FetchError::NotFound("42".into())));
    assert!(matches!(bob.fetch("other", sim_bob::ACTIVE_SALES_ID).await, Err(FetchError::Refused(_))));
    let http = reqwest::Client::new();
    let fault = json!({ "vendor": "hibob", "path": "/v1/people/**", "kind": "status", "status": 429, "count": 1 });
    http.post(format!("{}/_sim/faults", sim.url())).json(&fault).send().await.unwrap().error_for_status().unwrap();
    match bob.fetch("acme", sim_bob::ACTIVE_SALES_ID).await {
        Err(FetchError::Throttled { retry_after }) => assert!(retry_after.is_some()),
        other => panic!("expected Throttled, got {other:?}"),
    }
    let fault = json!({ "vendor": "hibob", "path": "/v1/people/**", "kind": "status", "status": 503, "count": 1 });
    http.post(format!("{}/_sim/faults", sim.url())).json(&fault).send().await.unwrap().error_for_status().unwrap();
    let err = bob.fetch("acme", sim_bob::ACTIVE_SALES_ID).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    // Kept, then read once the API is back.
    assert!(bob.fetch("acme", sim_bob::ACTIVE_SALES_ID).await.is_ok());
}
