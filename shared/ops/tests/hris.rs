//! HR deliveries from stored to events, in process against a real database
//! (SQLite and PostgreSQL): `lifecycle_ops::hris` with a small in-memory
//! [`Source`] standing in for an HRIS API (each source's own reads are tested
//! against the simulator in `lifecycle-hris`). No broker: events wait in the
//! outbox, which is what is checked.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use figment::providers::{Format, Toml};
use lifecycle_config::Settings;
use lifecycle_domain::RunState;
use lifecycle_hris::{
    Delivery, DeliveryKind, EmploymentStatus, FetchError, ParseError, Record, SignatureError, Source, SourceKind,
    Sources, Verified,
};
use lifecycle_ops::hris::{self, Processor};
use lifecycle_store::entity::hris_delivery::DeliveryState;
use lifecycle_store::hris::{DeliveryFilter, Inserted};
use lifecycle_store::testing::{Backend, TestDb};
use sea_orm::ConnectionTrait;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An HRIS API in memory: its records, and failures to answer first.
#[derive(Default)]
struct TestSource {
    records: Mutex<HashMap<String, Record>>,
    failures: Mutex<VecDeque<FetchError>>,
    reads: Mutex<usize>,
}

#[async_trait]
impl Source for TestSource {
    fn kind(&self) -> SourceKind {
        SourceKind::Bamboohr
    }
    fn verify(&self, _: &http::HeaderMap, _: &[u8], _: DateTime<Utc>) -> Result<Verified, SignatureError> {
        Ok(Verified { tenant: "acme".into() })
    }
    fn parse(&self, _: &[u8]) -> Result<Delivery, ParseError> {
        Err(ParseError("not used here".into()))
    }
    fn company_id(&self, _: &str) -> Option<&str> {
        Some("12345")
    }
    async fn fetch(&self, _tenant: &str, employee_id: &str) -> Result<Record, FetchError> {
        *self.reads.lock().unwrap() += 1;
        if let Some(e) = self.failures.lock().unwrap().pop_front() {
            return Err(e);
        }
        self.records.lock().unwrap().get(employee_id).cloned().ok_or_else(|| FetchError::NotFound(employee_id.into()))
    }
}

struct Fixture {
    db: lifecycle_store::Db,
    api: Arc<TestSource>,
    processor: Processor,
    _test_db: TestDb,
}

async fn start(backend: Backend) -> Fixture {
    let test_db = TestDb::new(backend).await;
    let url = test_db.url.clone();
    let toml = format!(
        "[database]\nurl = \"{url}\"\n[hris]\ntimezone = \"UTC\"\nretry_min_delay = \"100ms\"\nretry_max_delay = \"200ms\"\n{}",
        lifecycle_config::hris::example_rules()
    );
    let settings = Settings::from_figment(figment::Figment::new().merge(Toml::string(&toml))).unwrap();
    // As the producer's pool: one connection on SQLite.
    let db = lifecycle_store::connect(&url, settings.database.pool_size()).await.unwrap();
    lifecycle_store::migrate(&db).await.unwrap();
    let api = Arc::new(TestSource::default());
    let mut sources = Sources::default();
    sources.insert(api.clone());
    let processor = Processor {
        db: db.clone(),
        sources,
        settings: Arc::new(settings.hris.clone()),
        schedule: Arc::new(settings.schedule.clone()),
        guard: Arc::new(lifecycle_ops::approvals::guard(&settings)),
        owner: "producer-test".into(),
    };
    Fixture { db, api, processor, _test_db: test_db }
}

fn ada(department: &str) -> Record {
    Record {
        employee_id: "7".into(),
        email: Some("ada@example.com".into()),
        given_name: Some("Ada".into()),
        family_name: Some("Lovelace".into()),
        status: EmploymentStatus::Active,
        department: Some(department.into()),
        employment_status: Some("Active".into()),
        ..Record::default()
    }
}

fn delivery(key: &str, kind: DeliveryKind, type_name: &str) -> Delivery {
    Delivery {
        company_id: "12345".into(),
        key: key.into(),
        kind,
        type_name: type_name.into(),
        employee_id: Some("7".into()),
        occurred_at: Some(Utc::now()),
    }
}

impl Fixture {
    fn set(&self, r: Record) {
        self.api.records.lock().unwrap().insert(r.employee_id.clone(), r);
    }

    async fn accept(&self, d: &Delivery) -> Inserted {
        hris::accept(&self.db, SourceKind::Bamboohr, "acme", d, br#"{"type":"employee.created"}"#).await.unwrap()
    }

    /// Runs of the events of source `hris:bamboohr`: (vendor, workflow, state).
    async fn runs(&self) -> Vec<(String, String, RunState)> {
        let rows = self
            .db
            .query_all(sea_orm::Statement::from_string(
                self.db.get_database_backend(),
                "SELECT r.vendor, r.workflow, r.state FROM runs r JOIN events e ON e.id = r.event_id \
                 WHERE e.source = 'hris:bamboohr' ORDER BY r.seq"
                    .to_string(),
            ))
            .await
            .unwrap();
        rows.iter()
            .map(|r| {
                let state: String = r.try_get("", "state").unwrap();
                (
                    r.try_get("", "vendor").unwrap(),
                    r.try_get("", "workflow").unwrap(),
                    state.parse::<RunState>().unwrap(),
                )
            })
            .collect()
    }

    async fn events(&self) -> i64 {
        let row = self
            .db
            .query_one(sea_orm::Statement::from_string(
                self.db.get_database_backend(),
                "SELECT COUNT(*) AS n FROM events WHERE source = 'hris:bamboohr'".to_string(),
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get("", "n").unwrap()
    }

    async fn state(&self, id: &str) -> hris::DeliveryView {
        hris::delivery(&self.db, id).await.unwrap()
    }
}

fn id(i: Inserted) -> String {
    match i {
        Inserted::Stored(id) => id,
        Inserted::Existing(id) => panic!("already there: {id}"),
    }
}

async fn the_same_delivery_five_times_is_one_row_and_one_joiner(backend: Backend) {
    let f = start(backend).await;
    f.set(ada("Sales"));
    let d = delivery("created-7-1", DeliveryKind::Joined, "employee.created");
    let first = id(f.accept(&d).await);
    for _ in 0..4 {
        assert_eq!(f.accept(&d).await, Inserted::Existing(first.clone()));
    }
    assert_eq!(f.processor.pass().await.unwrap(), 1, "one event stored");
    let runs = f.runs().await;
    assert_eq!(
        runs,
        [
            ("pipedrive".into(), "joiner".into(), RunState::Queued),
            ("calendly".into(), "joiner".into(), RunState::Queued)
        ]
    );
    let view = f.state(&first).await;
    assert_eq!((view.state, view.event_ids.len()), (DeliveryState::Processed, 1));
    assert_eq!(*f.api.reads.lock().unwrap(), 1);
    // Nothing due any more.
    assert_eq!(f.processor.pass().await.unwrap(), 0);
    assert_eq!(f.events().await, 1);
}

async fn created_then_updated_make_one_joiner_then_a_move_and_a_leaver(backend: Backend) {
    let f = start(backend).await;
    f.set(ada("Sales"));
    f.accept(&delivery("created", DeliveryKind::Joined, "employee.created")).await;
    f.accept(&delivery("updated", DeliveryKind::Changed, "employee.updated")).await;
    f.processor.pass().await.unwrap();
    assert_eq!(f.events().await, 1, "one joiner for the pair");
    let list = hris::list_deliveries(&f.db, &DeliveryFilter::default()).await.unwrap();
    assert!(list.iter().all(|d| d.state == DeliveryState::Processed), "{list:?}");

    // Security instead of Sales: Pipedrive goes, CrowdStrike comes, Calendly stays.
    f.set(ada("Security"));
    f.accept(&delivery("moved", DeliveryKind::Changed, "employee.updated")).await;
    f.processor.pass().await.unwrap();
    let runs = f.runs().await;
    assert!(runs.contains(&("pipedrive".into(), "leaver".into(), RunState::Queued)), "{runs:?}");
    assert!(runs.contains(&("crowdstrike".into(), "joiner".into(), RunState::Queued)), "{runs:?}");

    // Terminated with a last day ahead: a leaver of what they have, scheduled the day after.
    let mut gone = ada("Security");
    gone.status = EmploymentStatus::Inactive;
    gone.termination_date = Some((Utc::now() + chrono::Duration::days(10)).date_naive());
    f.set(gone);
    f.accept(&delivery("left", DeliveryKind::Changed, "employee.updated")).await;
    f.processor.pass().await.unwrap();
    let leavers: Vec<_> = f.runs().await.into_iter().filter(|r| r.1 == "leaver").collect();
    assert!(leavers.contains(&("crowdstrike".into(), "leaver".into(), RunState::Scheduled)), "{leavers:?}");
    assert!(leavers.contains(&("calendly".into(), "leaver".into(), RunState::Scheduled)), "{leavers:?}");
}

async fn an_api_failing_transiently_keeps_the_delivery_until_it_answers(backend: Backend) {
    let f = start(backend).await;
    f.set(ada("Sales"));
    f.api.failures.lock().unwrap().extend([
        FetchError::Throttled { retry_after: Some(Duration::from_millis(300)) },
        FetchError::Unavailable("503 Service Unavailable".into()),
    ]);
    let id = id(f.accept(&delivery("created", DeliveryKind::Joined, "employee.created")).await);
    f.processor.pass().await.unwrap();
    let view = f.state(&id).await;
    assert_eq!(view.state, DeliveryState::Pending);
    assert!(view.last_error.as_deref().unwrap().contains("rate limiting"), "{view:?}");
    assert!(view.next_attempt_at.unwrap() >= Utc::now() + chrono::Duration::milliseconds(200), "Retry-After honoured");
    assert_eq!(f.processor.pass().await.unwrap(), 0, "not due yet");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while f.state(&id).await.state != DeliveryState::Processed {
        assert!(tokio::time::Instant::now() < deadline, "never processed: {:?}", f.state(&id).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
        f.processor.pass().await.unwrap();
    }
    assert_eq!(*f.api.reads.lock().unwrap(), 3);
    assert_eq!(f.state(&id).await.attempts, 3);
    assert_eq!(f.events().await, 1);
}

async fn what_cannot_be_mapped_needs_a_person_and_is_retried_by_one(backend: Backend) {
    let f = start(backend).await;
    let mut nameless = ada("Sales");
    nameless.email = None;
    f.set(nameless);
    let id = id(f.accept(&delivery("created", DeliveryKind::Joined, "employee.created")).await);
    f.processor.pass().await.unwrap();
    let view = f.state(&id).await;
    assert_eq!(view.state, DeliveryState::NeedsPerson);
    assert!(view.outcome.as_deref().unwrap().contains("no work e-mail"), "{view:?}");
    assert!(view.body.contains("employee.created"), "the raw delivery is kept");
    let listed = hris::list_deliveries(
        &f.db,
        &DeliveryFilter { state: Some(DeliveryState::NeedsPerson), ..DeliveryFilter::default() },
    )
    .await
    .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(f.events().await, 0);

    // Not one to retry by hand while it is processed.
    f.set(ada("Sales"));
    let retried = hris::retry_delivery(&f.db, &id, "ctl:tester", Some("e-mail added in BambooHR")).await.unwrap();
    assert_eq!(retried.state, DeliveryState::Pending);
    f.processor.pass().await.unwrap();
    assert_eq!(f.state(&id).await.state, DeliveryState::Processed);
    assert_eq!(f.events().await, 1);
    let again = hris::retry_delivery(&f.db, &id, "ctl:tester", None).await.unwrap_err();
    assert!(again.to_string().contains("only one that needs a person"), "{again}");

    // An employee the API does not know (not a leaver): a person looks.
    let mut other = delivery("ghost", DeliveryKind::Changed, "employee.updated");
    other.employee_id = Some("404".into());
    let ghost = match f.accept(&other).await {
        Inserted::Stored(id) => id,
        e => panic!("{e:?}"),
    };
    f.processor.pass().await.unwrap();
    assert_eq!(f.state(&ghost).await.state, DeliveryState::NeedsPerson);
}

async fn two_producers_never_process_one_delivery_twice(backend: Backend) {
    let f = start(backend).await;
    f.set(ada("Sales"));
    for i in 0..20 {
        f.accept(&delivery(&format!("d{i}"), DeliveryKind::Changed, "employee.updated")).await;
    }
    let mut other = f.processor.clone();
    other.owner = "producer-other".into();
    let (a, b) = tokio::join!(f.processor.pass(), other.pass());
    let mut created = a.unwrap() + b.unwrap();
    // A delivery that lost the race for the person's row is due again a second later.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let list = hris::list_deliveries(&f.db, &DeliveryFilter::default()).await.unwrap();
        if list.iter().all(|d| d.state == DeliveryState::Processed) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not all processed: {list:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (a, b) = tokio::join!(f.processor.pass(), other.pass());
        created += a.unwrap() + b.unwrap();
    }
    assert_eq!(created, 1, "twenty deliveries of one unchanged joiner: one event");
    assert_eq!(f.events().await, 1);
    assert!(*f.api.reads.lock().unwrap() >= 20);
}

async fn a_long_delivery_identity_is_kept_as_its_digest(backend: Backend) {
    let f = start(backend).await;
    let mut d = delivery(&"k".repeat(400), DeliveryKind::Changed, &"employee.updated".repeat(8));
    let first = id(f.accept(&d).await);
    assert_eq!(f.accept(&d).await, Inserted::Existing(first.clone()), "a retry is still the same delivery");
    d.key.push('x');
    assert!(matches!(f.accept(&d).await, Inserted::Stored(_)), "another identity is another delivery");
    let view = f.state(&first).await;
    assert_eq!(view.type_name.len(), 64);
}

lifecycle_store::on_both_databases!(
    the_same_delivery_five_times_is_one_row_and_one_joiner,
    created_then_updated_make_one_joiner_then_a_move_and_a_leaver,
    an_api_failing_transiently_keeps_the_delivery_until_it_answers,
    what_cannot_be_mapped_needs_a_person_and_is_retried_by_one,
    two_producers_never_process_one_delivery_twice,
    a_long_delivery_identity_is_kept_as_its_digest,
);
