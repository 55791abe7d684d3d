//! Support for the end-to-end tests: real processes, real broker, real databases.
//!
//! Every test gets its own database (a SQLite file, or a fresh PostgreSQL
//! database), its own RabbitMQ namespace (queue and exchange prefix), and its
//! own simulator, producer and worker processes started from the built
//! binaries. A test that cannot reach RabbitMQ or PostgreSQL fails with a
//! message saying so; nothing is skipped.
//!
//! The binaries are found in `$LIFECYCLE_BIN_DIR`, else next to the test
//! executable (`target/<profile>/`); `scripts/test` builds them first.

pub mod broker;
pub mod browser;
pub mod cluster;
pub mod db;
pub mod fixtures;
pub mod lanes;
pub mod ops;
pub mod pg;
pub mod process;
pub mod sim;
pub mod stack;
pub mod upgrade;

pub use db::{Backend, TestDb};
pub use stack::{call_at_ms, Stack, StackOptions};

/// Generates one test per database backend from an `async fn(Backend)`:
/// `both_databases!(joiner_creates_the_user);` gives
/// `joiner_creates_the_user::sqlite` and `joiner_creates_the_user::postgres`.
#[macro_export]
macro_rules! both_databases {
    ($($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::Backend::Sqlite).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::Backend::Postgres).await
                }
            }
        )+
    };
}

/// Generates one test on one named backend, keeping the `::sqlite` / `::postgres` name that
/// [`both_databases!`] gives: `on_database!(Postgres: leaver_revokes_it, ...)`.
///
/// For the vendors' end-to-end tests: what they show is the vendor's behaviour, and the database
/// path under it (journal, retries, run states) is the same for every vendor and is run on both
/// databases by the engine's tests, the reliability and time suites and each vendor's recovery
/// tests (a 429 or 5xx, an answer lost after a write), which stay on both. The rest of a vendor's
/// tests are shared between the two databases, so that each still sees every vendor, at half the
/// suite's time (BENCHMARKS.md, "CI time").
#[macro_export]
macro_rules! on_database {
    (Sqlite: $($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name($crate::Backend::Sqlite).await
                }
            }
        )+
    };
    (Postgres: $($name:ident),+ $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name($crate::Backend::Postgres).await
                }
            }
        )+
    };
}

pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

pub fn amqp_url() -> String {
    std::env::var("LIFECYCLE_TEST_AMQP_URL").unwrap_or_else(|_| AMQP_URL.into())
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: std::time::Duration, what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    poll(timeout, check).await.unwrap_or_else(|| panic!("timed out after {timeout:?} waiting for: {what}"))
}

/// Polls `check` every 100 ms until it returns `Some`; `None` after `timeout`
/// (for a caller that says more than [`eventually`] when it gives up).
pub async fn poll<T, F, Fut>(timeout: std::time::Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
