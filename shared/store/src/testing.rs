//! A fresh database per test, on SQLite or PostgreSQL: every test crate that needs one
//! (`features = ["testing"]`) takes it from here, so none copies the set-up and the clean-up.

use sea_orm::{ConnectionTrait, Database};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests create their databases on.
pub fn postgres_admin_url() -> String {
    std::env::var("LIFECYCLE_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub struct TestDb {
    pub url: String,
    pub backend: Backend,
    pg_name: Option<String>,
    /// The server's admin URL the database was made on (and is dropped from).
    pg_admin: String,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(backend: Backend) -> TestDb {
        Self::on_server(backend, &postgres_admin_url()).await
    }

    /// As [`TestDb::new`], on PostgreSQL on the server `admin` names (a test's own server).
    pub async fn on_server(backend: Backend, admin: &str) -> TestDb {
        let admin = admin.to_string();
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("creating a temp dir");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("lifecycle.db").display());
                TestDb { url, backend, pg_name: None, pg_admin: admin, _dir: Some(dir) }
            }
            Backend::Postgres => {
                let name = format!("lc_test_{}", uuid::Uuid::new_v4().simple());
                let conn = Database::connect(&admin).await.unwrap_or_else(|e| {
                    panic!("PostgreSQL must be running at {admin} for this test (start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`): {e}")
                });
                conn.execute_unprepared(&format!("CREATE DATABASE {name}")).await.expect("creating a test database");
                let _ = conn.close().await;
                let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).expect("the admin URL names a database");
                TestDb { url: format!("{base}/{name}"), backend, pg_name: Some(name), pg_admin: admin, _dir: None }
            }
        }
    }

    pub async fn connect(&self) -> crate::Db {
        let db = crate::connect(&self.url, 4).await.expect("connecting to the test database");
        crate::migrate(&db).await.expect("migrating the test database");
        db
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            // Drop runs outside any runtime guarantee: use a thread with its own.
            let admin = self.pg_admin.clone();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                rt.block_on(async move {
                    let conn = Database::connect(&admin).await.ok()?;
                    let _ = conn.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await;
                    let _ = conn.close().await;
                    Some(())
                })
            })
            .join();
        }
    }
}

/// One queued Pipedrive joiner per person in `people` (their address, also the run's person
/// key): events `ev-0`, `ev-1`, ... with runs `run-0`, `run-1`, ..., in that order.
pub async fn queue_joiners(db: &crate::Db, people: &[&str]) {
    use crate::events::{self, NewEvent, NewRun};
    use lifecycle_domain::{VendorKind, Workflow};
    for (i, person) in people.iter().enumerate() {
        let ev = NewEvent {
            id: format!("ev-{i}"),
            source: "intake".into(),
            idempotency_key: format!("k-{i}"),
            payload_hash: format!("h-{i}"),
            event_type: "joiner".into(),
            employee_id: Some(format!("E-{i}")),
            employee_email: Some(person.to_string()),
            payload: "{}".into(),
            response_status: 202,
            response_body: "{}".into(),
            traceparent: None,
        };
        let run = NewRun {
            id: format!("run-{i}"),
            vendor: VendorKind::Pipedrive,
            workflow: Workflow::Joiner,
            person_key: person.to_string(),
            input: "{}".into(),
            occurred_at: None,
            effective_at: None,
            start_at: None,
        };
        events::accept(db, ev, vec![run], None, |_| String::new()).await.expect("queueing a test joiner");
    }
}

/// One test per database: `on_both_databases!(a, b)` makes `a::sqlite` and
/// `a::postgres` (and the same for `b`), each calling `a(Backend::..)` on a
/// two-thread runtime, so that a test's concurrent writers really overlap.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() { super::$name($crate::testing::Backend::Sqlite).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() { super::$name($crate::testing::Backend::Postgres).await }
        }
    )+};
}
