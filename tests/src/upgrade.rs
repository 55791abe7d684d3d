//! What an older version left behind, for the upgrade test (`tests/e2e/upgrade.rs`): a fixture
//! made by `scripts/upgrade-fixture <rev>` in `tests/fixtures/upgrade/<short-rev>/` holds that
//! version's database (both backends) and the broker topology it declared. A stack started
//! with [`crate::StackOptions::upgrade_from`] gets that database and that topology (in its own
//! namespace) before the current binaries start, which then migrate and declare over them.

use crate::db::{Backend, TestDb};
use lifecycle_broker::lapin::options::{
    ExchangeBindOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lifecycle_broker::lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lifecycle_broker::lapin::ExchangeKind;
use sea_orm::{ConnectionTrait, Database};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// One fixture directory.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub dir: PathBuf,
    /// `fixture.json`: the revision, the namespace its binaries used, the events' ids.
    pub meta: Value,
}

impl Fixture {
    /// Every fixture in `tests/fixtures/upgrade/`, oldest revision first by name.
    pub fn all() -> Vec<Fixture> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/upgrade");
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
            .unwrap_or_else(|e| panic!("reading {}: {e}", root.display()))
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("fixture.json").exists())
            .collect();
        dirs.sort();
        dirs.into_iter().map(Fixture::open).collect()
    }

    pub fn open(dir: PathBuf) -> Fixture {
        let meta = read_json(&dir.join("fixture.json"));
        Fixture { dir, meta }
    }

    /// The short revision it was made from.
    pub fn revision(&self) -> &str {
        self.meta["short"].as_str().expect("fixture.json names its revision")
    }

    /// The event ids (`joiner`, `leaver`, `scheduled`, `queued`) in this backend's database.
    pub fn events(&self, backend: Backend) -> &Value {
        &self.meta["events"][backend_name(backend)]
    }

    /// Every run as the old version's `lifecycle-ctl runs list --json` listed it.
    pub fn runs(&self, backend: Backend) -> Vec<Value> {
        let v = read_json(&self.dir.join(format!("runs-{}.json", backend_name(backend))));
        v.as_array().cloned().expect("a list of runs")
    }

    /// The joiner's Pipedrive run with its steps, as the old `lifecycle-ctl runs show --json` showed it.
    pub fn run(&self, backend: Backend) -> Value {
        read_json(&self.dir.join(format!("run-{}.json", backend_name(backend))))
    }

    /// The migrations the old version had applied.
    pub fn migrations(&self) -> Vec<String> {
        self.meta["migrations"].as_array().into_iter().flatten().filter_map(|m| m.as_str().map(String::from)).collect()
    }

    /// Loads the old version's database into `db` (empty), as SQL text.
    pub async fn load_database(&self, db: &TestDb) {
        let path = self.dir.join(format!("{}.sql", backend_name(db.backend)));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        // pg_dump writes psql meta-commands (`\restrict KEY` ... `\unrestrict KEY`, which guard psql
        // against a hostile dump); the server does not know them and this dump is ours.
        let meta = |l: &str| l.starts_with("\\restrict ") || l.starts_with("\\unrestrict ");
        let sql: String = text.lines().filter(|l| !meta(l)).flat_map(|l| [l, "\n"]).collect();
        // A plain connection, not the store's: nothing may be migrated before the binaries start.
        let conn = Database::connect(&db.url).await.expect("connecting to the test database");
        // Several statements at once: SQLite runs them in turn, PostgreSQL as one simple query.
        conn.execute_unprepared(&sql).await.unwrap_or_else(|e| panic!("loading {}: {e}", path.display()));
        let _ = conn.close().await;
    }

    /// Declares the queues, exchanges and bindings the old version declared, with their
    /// arguments, under `namespace` instead of the one the fixture's binaries used; returns the
    /// names of the queues and of the exchanges declared.
    pub async fn declare_topology(&self, namespace: &str) -> (Vec<String>, Vec<String>) {
        let old = format!("{}.", self.meta["namespace"].as_str().expect("fixture.json names its namespace"));
        let new = format!("{namespace}.");
        let rename = |s: &str| match s.strip_prefix(&old) {
            Some(rest) => format!("{new}{rest}"),
            None => s.to_string(),
        };
        let conn = lifecycle_broker::connect(&crate::amqp_url(), "e2e-upgrade").await.expect("RabbitMQ");
        let ch = conn.create_channel().await.expect("a channel");
        let (mut queues, mut exchanges) = (Vec::new(), Vec::new());

        for e in self.topology("exchanges") {
            let kind = match e["type"].as_str().expect("an exchange type") {
                "topic" => ExchangeKind::Topic,
                "fanout" => ExchangeKind::Fanout,
                "direct" => ExchangeKind::Direct,
                "headers" => ExchangeKind::Headers,
                other => ExchangeKind::Custom(other.to_string()),
            };
            let opts = ExchangeDeclareOptions {
                durable: flag(&e, "durable"),
                auto_delete: flag(&e, "auto_delete"),
                internal: flag(&e, "internal"),
                ..Default::default()
            };
            let name = rename(e["name"].as_str().expect("an exchange name"));
            ch.exchange_declare(name.as_str().into(), kind, opts, arguments(&e["arguments"], &rename))
                .await
                .unwrap_or_else(|err| panic!("declaring the old exchange {name}: {err}"));
            exchanges.push(name);
        }
        for q in self.topology("queues") {
            let opts = QueueDeclareOptions {
                durable: flag(&q, "durable"),
                auto_delete: flag(&q, "auto_delete"),
                exclusive: flag(&q, "exclusive"),
                ..Default::default()
            };
            let mut args = arguments(&q["arguments"], &rename);
            // A classic queue is the default; any other type is an argument at declaration.
            if let Some(t) = q["type"].as_str().filter(|t| *t != "classic") {
                if !args.inner().contains_key("x-queue-type") {
                    args.insert(ShortString::from("x-queue-type"), AMQPValue::LongString(LongString::from(t)));
                }
            }
            let name = rename(q["name"].as_str().expect("a queue name"));
            ch.queue_declare(name.as_str().into(), opts, args)
                .await
                .unwrap_or_else(|err| panic!("declaring the old queue {name}: {err}"));
            queues.push(name);
        }
        for b in self.topology("bindings") {
            let (source, dest) =
                (rename(b["source_name"].as_str().unwrap()), rename(b["destination_name"].as_str().unwrap()));
            let key = b["routing_key"].as_str().unwrap_or_default();
            let args = arguments(&b["arguments"], &rename);
            let done = if b["destination_kind"] == "exchange" {
                ch.exchange_bind(
                    dest.as_str().into(),
                    source.as_str().into(),
                    key.into(),
                    ExchangeBindOptions::default(),
                    args,
                )
                .await
            } else {
                ch.queue_bind(
                    dest.as_str().into(),
                    source.as_str().into(),
                    key.into(),
                    QueueBindOptions::default(),
                    args,
                )
                .await
            };
            done.unwrap_or_else(|err| panic!("binding {dest} to {source} with {key:?}: {err}"));
        }
        let _ = conn.close(200, "declared".into()).await;
        (queues, exchanges)
    }

    /// `broker-<what>.json`.
    pub fn topology(&self, what: &str) -> Vec<Value> {
        read_json(&self.dir.join(format!("broker-{what}.json"))).as_array().cloned().expect("a list")
    }
}

fn backend_name(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    }
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn flag(v: &Value, key: &str) -> bool {
    v[key].as_bool().unwrap_or(false)
}

/// rabbitmqctl's `arguments`, a list of `[name, type, value]`, as the AMQP table the old version
/// declared: each value in the type it was sent in (RabbitMQ compares the type too). Strings
/// naming something of the old namespace are renamed to the test's.
fn arguments(v: &Value, rename: &dyn Fn(&str) -> String) -> FieldTable {
    let mut t = FieldTable::default();
    for arg in v.as_array().expect("arguments are a list") {
        let [name, kind, value] = arg.as_array().map(Vec::as_slice).unwrap_or_default() else {
            panic!("an argument is [name, type, value]: {arg}");
        };
        let name = name.as_str().expect("an argument's name");
        t.insert(ShortString::from(name), amqp(kind.as_str().unwrap_or_default(), value, rename));
    }
    t
}

fn amqp(kind: &str, v: &Value, rename: &dyn Fn(&str) -> String) -> AMQPValue {
    let int = || v.as_i64().unwrap_or_else(|| panic!("a {kind} argument holds an integer: {v}"));
    match kind {
        "longstr" => AMQPValue::LongString(LongString::from(rename(v.as_str().expect("a longstr is a string")))),
        "bool" => AMQPValue::Boolean(v.as_bool().expect("a bool")),
        "long" => AMQPValue::LongLongInt(int()),
        "signedint" => AMQPValue::LongInt(int() as i32),
        "short" => AMQPValue::ShortInt(int() as i16),
        "byte" => AMQPValue::ShortShortInt(int() as i8),
        "unsignedint" => AMQPValue::LongUInt(int() as u32),
        "unsignedshort" => AMQPValue::ShortUInt(int() as u16),
        "unsignedbyte" => AMQPValue::ShortShortUInt(int() as u8),
        "timestamp" => AMQPValue::Timestamp(int() as u64),
        "double" => AMQPValue::Double(v.as_f64().expect("a double")),
        "float" => AMQPValue::Float(v.as_f64().expect("a float") as f32),
        "void" => AMQPValue::Void,
        // Nothing lifecycle declares has other types; a fixture that did needs them added here.
        other => panic!("an argument of type {other} ({v}): not read by tests/src/upgrade.rs yet"),
    }
}
