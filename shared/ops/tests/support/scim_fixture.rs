//! The in-process SCIM fixture of the ops tests (scim.rs, scim_push.rs): a
//! migrated database of the given backend and a `Scim` handle over it, with
//! the test's group mapping.

use figment::providers::{Format, Toml};
use lifecycle_config::{ScheduleSettings, Settings};
use lifecycle_ops::scim::Scim;
use lifecycle_scim::mapping::Mapping;
use lifecycle_store::safety::Guard;
use lifecycle_store::testing::{Backend, TestDb};

pub struct Fixture {
    pub db: lifecycle_store::Db,
    schedule: ScheduleSettings,
    guard: Guard,
    mapping: Mapping,
    _test_db: TestDb,
}

/// A fresh database with SCIM configured by `mapping` (`[[scim.groups]]` TOML).
pub async fn start(backend: Backend, mapping: &str) -> Fixture {
    let test_db = TestDb::new(backend).await;
    let url = test_db.url.clone();
    let toml = format!("[database]\nurl = \"{url}\"\n[scim]\ntokens = [\"scim-test-token-0123456789\"]\n{mapping}");
    let settings = Settings::from_figment(figment::Figment::new().merge(Toml::string(&toml))).unwrap();
    let db = lifecycle_store::connect(&url, settings.database.pool_size()).await.unwrap();
    lifecycle_store::migrate(&db).await.unwrap();
    Fixture {
        db,
        schedule: settings.schedule.clone(),
        guard: lifecycle_ops::approvals::guard(&settings),
        mapping: Mapping::new(&settings.scim),
        _test_db: test_db,
    }
}

impl Fixture {
    pub fn scim(&self) -> Scim<'_> {
        Scim { db: &self.db, schedule: &self.schedule, guard: &self.guard, mapping: &self.mapping }
    }
}
