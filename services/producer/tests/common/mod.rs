//! The SCIM tests' producer: its own `build` on a free port, a fresh database (SQLite or
//! PostgreSQL), no broker (events wait in the outbox); and the settings every producer test starts
//! from. Not every test binary uses all of it.
#![allow(dead_code)]

use figment::providers::{Format, Toml};
use figment::Figment;
use lifecycle_config::Settings;
use lifecycle_store::testing::{Backend, TestDb};
use std::time::Duration;

/// A producer's settings on a free port with no broker (events wait in the outbox) and its
/// database at `db_url`; `rest` is more TOML, merged over those (its own tables, tokens, ...).
pub fn settings(db_url: &str, rest: &str) -> Settings {
    let base = format!(
        r#"
        [database]
        url = "{db_url}"
        [broker]
        url = "amqp://127.0.0.1:1/%2f"
        confirm_timeout = "1s"
        [producer]
        listen = "127.0.0.1:0"
        "#
    );
    Settings::from_figment(Figment::new().merge(Toml::string(&base)).merge(Toml::string(rest))).unwrap()
}

pub struct Fixture {
    /// `http://ADDR/scim/v2`
    pub base: String,
    pub http: reqwest::Client,
    pub db: lifecycle_store::Db,
    pub running: Option<lifecycle_producer::Running>,
    _test_db: TestDb,
}

/// A producer serving SCIM with `token`; `scim` is more of the `[scim]` table (a mapping, a
/// `public_url`, ...).
pub async fn start(backend: Backend, token: &str, scim: &str) -> Fixture {
    let test_db = TestDb::new(backend).await;
    let url = &test_db.url;
    let settings = settings(
        url,
        &format!(
            r#"
            [producer]
            intake_tokens = ["intake-token-0123456789"]
            [scim]
            tokens = ["{token}"]
            {scim}
            "#
        ),
    );
    let running = lifecycle_producer::build(settings, lifecycle_telemetry::BuildInfo::unknown()).await.unwrap();
    let db = lifecycle_store::connect(url, 4).await.unwrap();
    Fixture {
        base: format!("http://{}/scim/v2", running.addr),
        http: reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap(),
        db,
        running: Some(running),
        _test_db: test_db,
    }
}
