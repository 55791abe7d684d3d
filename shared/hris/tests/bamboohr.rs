//! BambooHR as the receiver and the processing loop use it, in process: deliveries built and
//! signed by the simulator's sender are verified and parsed, and the details are read from the
//! simulator's Get Employee (started on port 0), its refusals and rate-limit answers included.

use std::time::{Duration, Instant};

use chrono::{NaiveDate, TimeZone as _, Utc};
use lifecycle_hris::bamboohr::{self, Bamboohr};
use lifecycle_hris::{DeliveryKind, EmploymentStatus, FetchError, SignatureError, Source as _, SourceKind};
use lifecycle_vendor_sim::bamboohr::sender::{delivery, Encoding, Send, Tamper};
use lifecycle_vendor_sim::bamboohr::{
    api_url, ACTIVE_SALES_ID, COMPANY_ID, DEFAULT_API_KEY, NO_EMAIL_ID, TERMINATED_ID, WEBHOOK_SECRET,
};
use lifecycle_vendor_sim::{build, Config, Running};
use serde_json::{json, Value};

async fn sim() -> Running {
    build(Config::ephemeral()).await.expect("the simulator starts")
}

/// Two tenants: `acme` is the simulator's company; `beta` another company with its own key.
fn source(sim: &Running, api_key: &str, per_second: u32) -> Bamboohr {
    let table = json!({"tenants": [
        {"name": "acme", "company_id": COMPANY_ID, "webhook_secret": WEBHOOK_SECRET,
         "api_url": api_url(&sim.url()), "api_key": api_key, "rate_limit": {"per_second": per_second}},
        {"name": "beta", "company_id": "777", "webhook_secret": "beta-private-key",
         "api_url": api_url(&sim.url()), "api_key": api_key}
    ]});
    bamboohr::source(&table, Duration::from_secs(5)).expect("a valid [hris.bamboohr] table")
}

fn send(kind: &str, employee_id: u64) -> Send {
    Send::new(WEBHOOK_SECRET, kind, &employee_id.to_string(), COMPANY_ID)
}

#[tokio::test]
async fn a_signed_delivery_verifies_parses_and_reads_the_employee() {
    let sim = sim().await;
    let source = source(&sim, DEFAULT_API_KEY, 5);
    assert_eq!(source.kind(), SourceKind::Bamboohr);
    let (headers, body) = delivery(&send("employee.created", ACTIVE_SALES_ID)).unwrap();

    let verified = source.verify(&headers, &body, Utc::now()).expect("signed with acme's key");
    assert_eq!(verified.tenant, "acme");
    let d = source.parse(&body).unwrap();
    assert_eq!(d.kind, DeliveryKind::Joined);
    assert_eq!(source.company_id(&verified.tenant), Some(d.company_id.as_str()));
    assert_eq!(d.employee_id.as_deref(), Some("101"));
    assert!(d.occurred_at.is_some_and(|t| (Utc::now() - t).num_seconds().abs() < 60));

    let r = source.fetch(&verified.tenant, "101").await.unwrap();
    assert_eq!(r.employee_id, "101");
    assert_eq!(r.email.as_deref(), Some("ada.lovelace@example.com"));
    assert_eq!((r.given_name.as_deref(), r.family_name.as_deref()), (Some("Ada"), Some("Lovelace")));
    assert_eq!(r.status, EmploymentStatus::Active);
    assert_eq!(r.department.as_deref(), Some("Sales"));
    assert_eq!(r.job_title.as_deref(), Some("Account Executive"));
    assert_eq!(r.location.as_deref(), Some("London"));
    assert_eq!(r.employment_status.as_deref(), Some("Full-Time"));
    assert_eq!(r.hire_date, NaiveDate::from_ymd_opt(2024, 3, 1));
    assert_eq!(r.termination_date, None, "0000-00-00 is no date");
}

#[tokio::test]
async fn the_key_that_signed_picks_the_tenant_and_a_form_post_reads_the_same() {
    let sim = sim().await;
    let source = source(&sim, DEFAULT_API_KEY, 5);
    let beta = Send { encoding: Encoding::Form, ..Send::new("beta-private-key", "employee.deleted", "55", "777") };
    let (headers, body) = delivery(&beta).unwrap();
    assert_eq!(source.verify(&headers, &body, Utc::now()).unwrap().tenant, "beta");
    let d = source.parse(&body).unwrap();
    assert_eq!((d.kind, d.company_id.as_str(), d.employee_id.as_deref()), (DeliveryKind::Left, "777", Some("55")));
}

#[tokio::test]
async fn tampered_wrong_key_and_stale_deliveries_are_refused() {
    let sim = sim().await;
    let source = source(&sim, DEFAULT_API_KEY, 5);
    for tamper in [Tamper::Body, Tamper::Signature] {
        let (headers, body) =
            delivery(&Send { tamper: Some(tamper), ..send("employee.updated", ACTIVE_SALES_ID) }).unwrap();
        assert_eq!(source.verify(&headers, &body, Utc::now()), Err(SignatureError::Mismatch), "{tamper:?}");
    }
    let stranger = Send::new("a-key-nobody-configured", "employee.updated", "101", COMPANY_ID);
    let (headers, body) = delivery(&stranger).unwrap();
    assert_eq!(source.verify(&headers, &body, Utc::now()), Err(SignatureError::Mismatch));

    let old = Send { timestamp: Some("2026-01-31T18:42:00Z".into()), ..send("employee.updated", ACTIVE_SALES_ID) };
    let (headers, body) = delivery(&old).unwrap();
    let err = source.verify(&headers, &body, Utc::now()).unwrap_err();
    assert!(matches!(err, SignatureError::Stale { window_secs: 300, .. }), "{err:?}");
    assert_eq!(err.reason(), "stale");
    // The same delivery, read when it was sent, is fine: only its age refuses it.
    let then = Utc.with_ymd_and_hms(2026, 1, 31, 18, 43, 0).unwrap();
    assert_eq!(source.verify(&headers, &body, then).unwrap().tenant, "acme");

    let mut unsigned = headers.clone();
    unsigned.remove("x-bamboohr-signature");
    assert_eq!(source.verify(&unsigned, &body, then), Err(SignatureError::Missing("X-BambooHR-Signature")));
}

#[tokio::test]
async fn a_retry_is_the_same_delivery_and_created_then_updated_are_two() {
    let sim = sim().await;
    let source = source(&sim, DEFAULT_API_KEY, 5);
    let at = Some("1769884920".to_owned());
    let created = Send { timestamp: at.clone(), ..send("employee.created", ACTIVE_SALES_ID) };
    let updated = Send { timestamp: at, ..send("employee.updated", ACTIVE_SALES_ID) };
    let key = |s: &Send| source.parse(&delivery(s).unwrap().1).unwrap().key;
    assert_eq!(key(&created), key(&created));
    assert_ne!(key(&created), key(&updated));
}

#[tokio::test]
async fn records_that_need_a_person_and_leavers_read_as_they_are() {
    let sim = sim().await;
    let source = source(&sim, DEFAULT_API_KEY, 5);
    let no_email = source.fetch("acme", &NO_EMAIL_ID.to_string()).await.unwrap();
    assert_eq!((no_email.email, no_email.status), (None, EmploymentStatus::Active));
    let gone = source.fetch("acme", &TERMINATED_ID.to_string()).await.unwrap();
    assert_eq!(gone.status, EmploymentStatus::Inactive);
    assert_eq!(gone.employment_status.as_deref(), Some("Terminated"));
    assert_eq!(gone.termination_date, NaiveDate::from_ymd_opt(2026, 11, 30));
    assert_eq!(source.fetch("acme", "99999").await, Err(FetchError::NotFound("99999".into())));
    assert!(matches!(source.fetch("nobody", "101").await, Err(FetchError::Refused(_))));
    assert!(matches!(source.fetch("acme", "../101").await, Err(FetchError::Refused(_))));
}

#[tokio::test]
async fn a_refused_key_needs_a_person_and_is_never_in_the_message() {
    let sim = sim().await;
    let source = source(&sim, "not-a-key-the-sim-knows", 5);
    let err = source.fetch("acme", "101").await.unwrap_err();
    assert!(matches!(err, FetchError::Refused(_)) && !err.is_transient(), "{err:?}");
    assert!(!err.to_string().contains("not-a-key-the-sim-knows"), "{err}");
}

async fn fault(sim: &Running, status: u16) {
    let spec =
        json!({"vendor": "bamboohr", "path": "/api/gateway.php/*/v1/employees/**", "kind": "status", "status": status});
    let resp = reqwest::Client::new().post(format!("{}/_sim/faults", sim.url())).json(&spec).send().await.unwrap();
    assert!(resp.status().is_success(), "{:?}", resp.json::<Value>().await);
}

#[tokio::test]
async fn rate_limits_and_outages_are_transient_and_the_read_works_after() {
    let sim = sim().await;
    let source = source(&sim, DEFAULT_API_KEY, 5);
    fault(&sim, 429).await;
    fault(&sim, 503).await;
    fault(&sim, 500).await;
    let throttled = source.fetch("acme", "101").await.unwrap_err();
    assert!(
        matches!(throttled, FetchError::Throttled { retry_after: Some(d) } if d >= Duration::from_secs(1)),
        "{throttled:?}"
    );
    let down = source.fetch("acme", "101").await.unwrap_err();
    assert!(matches!(down, FetchError::Unavailable(_)) && down.is_transient(), "{down:?}");
    assert!(source.fetch("acme", "101").await.unwrap_err().is_transient());
    assert_eq!(source.fetch("acme", "101").await.unwrap().email.as_deref(), Some("ada.lovelace@example.com"));
}

#[tokio::test]
async fn reads_wait_for_the_tenants_own_budget() {
    let sim = sim().await;
    let source = source(&sim, DEFAULT_API_KEY, 2);
    let started = Instant::now();
    for _ in 0..4 {
        source.fetch("acme", "101").await.unwrap();
    }
    // Two at once, then one every 500 ms.
    assert!(started.elapsed() >= Duration::from_millis(900), "{:?}", started.elapsed());
    // Another tenant's budget is untouched by acme's.
    let started = Instant::now();
    source.fetch("beta", "101").await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(400), "{:?}", started.elapsed());
}
