//! A whole system for one test: simulator, producer and worker(s), each a
//! real process, on a fresh database and a fresh broker namespace.

use crate::db::{Backend, TestDb};
use crate::process::{bin_dir, Proc};
use lifecycle_domain::RunState;
use lifecycle_store::entity::run::Model as Run;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::fixtures::{
    call_at_ms, contract_joiner, contract_leaver, pipedrive_joiner, pipedrive_leaver, pipedrive_webhook_fixture,
};

pub const INTAKE_TOKEN: &str = "test-intake-token";
pub const PIPEDRIVE_TOKEN: &str = "pd-admin-token";
pub const CROWDSTRIKE_CLIENT_ID: &str = "cs-client-id";
pub const CROWDSTRIKE_CLIENT_SECRET: &str = "cs-client-secret";
pub const CIRCLECI_TOKEN: &str = "circleci-admin-token";
pub const CIRCLECI_ORG_SLUG: &str = "gh/sim-org";
pub const CALENDLY_TOKEN: &str = "calendly-admin-token";
/// The simulator's GitHub organisation and the personal access token of its admin (`sim-admin`).
pub const GITHUB_TOKEN: &str = "github-admin-token";
pub const GITHUB_ORG: &str = "sim-org";
/// The teams lifecycle owns in the test stacks (a mover converges these and leaves any other).
pub const GITHUB_MANAGED_TEAMS: &str = "[platform, security]";
pub const ADMIN_USER: &str = "admin";
pub const ADMIN_PASSWORD: &str = "test-admin-password";
/// The HTTP Basic credentials Pipedrive's webhooks carry in the test stacks.
pub const WEBHOOK_USER: &str = "pipedrive-hooks";
pub const WEBHOOK_PASSWORD: &str = "test-webhook-password";
/// The HR sources' tenants in the test stacks: the simulator's fixture companies, credentials
/// and webhook secrets (the constants of `services/vendor-sim/src/<source>/mod.rs`).
pub const BAMBOOHR_COMPANY_ID: &str = "12345";
pub const BAMBOOHR_WEBHOOK_SECRET: &str = "bamboohr-webhook-private-key";
pub const HIBOB_COMPANY_ID: &str = "637323";
pub const HIBOB_WEBHOOK_SECRET: &str = "hibob-sim-webhook-secret";
pub const PERSONIO_COMPANY_ID: &str = "41234";
pub const PERSONIO_WEBHOOK_SECRET: &str = "personio-webhook-secret";
/// The birthright rules of the test stacks (`[hris]`): a Sales Manager is Pipedrive's "Sales
/// Manager" (listed first: Pipedrive holds one role, the first rule's), Sales is "Sales Rep",
/// Security and SOC get CrowdStrike's falcon_analyst; everyone gets Calendly.
pub const HRIS_RULES: &str = r#"[{when={job_title="Sales Manager"},apps={pipedrive={role="Sales Manager"}}},{when={department="Sales"},apps={pipedrive={role="Sales Rep"}}},{when={department=["Security","SOC"]},apps={crowdstrike={roles=["falcon_analyst"]}}}]"#;

#[derive(Debug, Clone)]
pub struct StackOptions {
    pub backend: Backend,
    pub name: String,
    pub workers: usize,
    /// Extra arguments for the simulator.
    pub sim_args: Vec<String>,
    /// Extra environment for the producer and the workers (wins over the defaults); `{sim}` in
    /// a value is replaced by the simulator's URL.
    pub env: BTreeMap<String, String>,
    /// The PostgreSQL server (its admin URL) the test's database is made on, when not the
    /// shared one: a test's own (`crate::pg::PrivatePg`), to restart.
    pub postgres_admin: Option<String>,
    /// An older version's database and broker topology to start from (the upgrade test):
    /// loaded and declared before the binaries start, and nothing migrated by the test.
    pub upgrade_from: Option<crate::upgrade::Fixture>,
    /// The RabbitMQ the stack checks, declares on and cleans up (`crate::amqp_url()` when
    /// not set): the cluster tests' nodes, which run while the machine's broker is restarted.
    pub broker_url: Option<String>,
}

impl StackOptions {
    pub fn new(backend: Backend, name: &str) -> Self {
        Self {
            backend,
            name: name.to_string(),
            workers: 1,
            sim_args: Vec::new(),
            env: BTreeMap::new(),
            postgres_admin: None,
            upgrade_from: None,
            broker_url: None,
        }
    }
    /// Check, use and clean up this RabbitMQ instead of the machine's (the cluster tests).
    pub fn broker(mut self, url: &str) -> Self {
        self.broker_url = Some(url.to_string());
        self
    }
    /// Start from what an older version left behind (see [`crate::upgrade`]).
    pub fn upgrade_from(mut self, fixture: &crate::upgrade::Fixture) -> Self {
        self.upgrade_from = Some(fixture.clone());
        self
    }
    /// The database on this PostgreSQL server (its admin URL) instead of the shared one.
    pub fn postgres_server(mut self, admin_url: &str) -> Self {
        self.postgres_admin = Some(admin_url.to_string());
        self
    }
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }
    pub fn sim_arg(mut self, arg: &str) -> Self {
        self.sim_args.push(arg.to_string());
        self
    }
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.to_string(), value.to_string());
        self
    }
}

pub struct Stack {
    pub db: TestDb,
    pub store: lifecycle_store::Db,
    pub namespace: String,
    pub sim_url: String,
    pub producer_url: String,
    /// The admin API and console; empty when the producer did not start them.
    pub admin_url: String,
    pub http: reqwest::Client,
    pub sim: Proc,
    pub producer: Option<Proc>,
    pub workers: Vec<Option<Proc>>,
    pub log_dir: PathBuf,
    env: BTreeMap<String, String>,
    worker_starts: usize,
    /// Queues and exchanges an older version's topology declared (the upgrade test), removed
    /// with the stack's own.
    old_topology: (Vec<String>, Vec<String>),
    /// The RabbitMQ this stack's queues live on.
    amqp: String,
}

impl Stack {
    pub async fn start(opts: StackOptions) -> Stack {
        let db = match &opts.postgres_admin {
            Some(admin) => TestDb::on_server(opts.backend, admin).await,
            None => TestDb::new(opts.backend).await,
        };
        let namespace =
            format!("t-{}-{}", opts.name.replace('_', "-"), &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let log_dir = bin_dir().join("e2e-logs").join(format!("{}-{:?}", namespace, opts.backend).to_lowercase());
        std::fs::create_dir_all(&log_dir).expect("creating the log dir");
        let amqp = opts.broker_url.clone().unwrap_or_else(crate::amqp_url);
        check_broker(&amqp).await;
        let mut old_topology = (Vec::new(), Vec::new());
        if let Some(fixture) = &opts.upgrade_from {
            fixture.load_database(&db).await;
            old_topology = fixture.declare_topology(&namespace).await;
        }

        let mut sim_args = vec!["--listen".to_string(), "127.0.0.1:0".to_string()];
        sim_args.extend(opts.sim_args.iter().cloned());
        let sim_args_ref: Vec<&str> = sim_args.iter().map(String::as_str).collect();
        let (sim, sim_addr) =
            Proc::start("sim", "lifecycle-vendor-sim", &sim_args_ref, &BTreeMap::new(), &log_dir, "listening on ");
        let sim_url = sim_addr.trim_end_matches('/').to_string();

        let mut env = BTreeMap::new();
        for (k, v) in [
            ("LIFECYCLE_DATABASE__URL", db.url.clone()),
            ("LIFECYCLE_BROKER__URL", amqp.clone()),
            ("LIFECYCLE_BROKER__NAMESPACE", namespace.clone()),
            ("LIFECYCLE_PRODUCER__LISTEN", "127.0.0.1:0".into()),
            ("LIFECYCLE_PRODUCER__INTAKE_TOKENS", INTAKE_TOKEN.into()),
            ("LIFECYCLE_PRODUCER__PIPEDRIVE_WEBHOOK__USERNAME", WEBHOOK_USER.into()),
            ("LIFECYCLE_PRODUCER__PIPEDRIVE_WEBHOOK__PASSWORD", WEBHOOK_PASSWORD.into()),
            ("LIFECYCLE_PRODUCER__RELAY_INTERVAL", "200ms".into()),
            ("LIFECYCLE_ADMIN__LISTEN", "127.0.0.1:0".into()),
            ("LIFECYCLE_ADMIN__PASSWORD", ADMIN_PASSWORD.into()),
            ("LIFECYCLE_WORKER__METRICS_LISTEN", "127.0.0.1:0".into()),
            ("LIFECYCLE_WORKER__LEASE", "6s".into()),
            ("LIFECYCLE_WORKER__SWEEP_INTERVAL", "1s".into()),
            ("LIFECYCLE_WORKER__SWEEP_GRACE", "3s".into()),
            ("LIFECYCLE_WORKER__BLOCKED_RECHECK", "5s".into()),
            // Off: a pass at start would read every vendor behind each test's
            // back; the reconcile tests run passes when they mean to.
            ("LIFECYCLE_RECONCILE__INTERVAL", "0s".into()),
            ("LIFECYCLE_WORKER__SHUTDOWN_GRACE", "5s".into()),
            ("LIFECYCLE_WORKER__HTTP_TIMEOUT", "4s".into()),
            // The simulator speaks plain http on this machine.
            ("LIFECYCLE_WORKER__ALLOW_PLAIN_HTTP", "true".into()),
            ("LIFECYCLE_RETRY__MIN_DELAY", "200ms".into()),
            ("LIFECYCLE_RETRY__MAX_DELAY", "3s".into()),
            ("LIFECYCLE_RETRY__MAX_ATTEMPTS", "8".into()),
            ("LIFECYCLE_VENDORS__PIPEDRIVE__BASE_URL", format!("{sim_url}/pipedrive")),
            ("LIFECYCLE_VENDORS__PIPEDRIVE__API_TOKEN", PIPEDRIVE_TOKEN.into()),
            ("LIFECYCLE_VENDORS__CROWDSTRIKE__BASE_URL", format!("{sim_url}/crowdstrike")),
            ("LIFECYCLE_VENDORS__CROWDSTRIKE__CLIENT_ID", CROWDSTRIKE_CLIENT_ID.into()),
            ("LIFECYCLE_VENDORS__CROWDSTRIKE__CLIENT_SECRET", CROWDSTRIKE_CLIENT_SECRET.into()),
            ("LIFECYCLE_VENDORS__CIRCLECI__BASE_URL", format!("{sim_url}/circleci/api/v2")),
            ("LIFECYCLE_VENDORS__CIRCLECI__TOKEN", CIRCLECI_TOKEN.into()),
            ("LIFECYCLE_VENDORS__CIRCLECI__ORG_SLUG", CIRCLECI_ORG_SLUG.into()),
            ("LIFECYCLE_VENDORS__CALENDLY__BASE_URL", format!("{sim_url}/calendly")),
            ("LIFECYCLE_VENDORS__CALENDLY__TOKEN", CALENDLY_TOKEN.into()),
            ("LIFECYCLE_VENDORS__CALENDLY__PLAN", "standard".into()),
            ("LIFECYCLE_VENDORS__JIRA__BASE_URL", format!("{sim_url}/jira/rest/api/3")),
            ("LIFECYCLE_VENDORS__JIRA__EMAIL", "admin@sim.example".into()),
            ("LIFECYCLE_VENDORS__JIRA__API_TOKEN", "jira-admin-token".into()),
            ("LIFECYCLE_VENDORS__GITHUB__BASE_URL", format!("{sim_url}/github")),
            ("LIFECYCLE_VENDORS__GITHUB__TOKEN", GITHUB_TOKEN.into()),
            ("LIFECYCLE_VENDORS__GITHUB__ORG", GITHUB_ORG.into()),
            ("LIFECYCLE_VENDORS__GITHUB__MANAGED_TEAMS", GITHUB_MANAGED_TEAMS.into()),
            // HR sources: one tenant each, at the simulator, with short retry waits.
            ("LIFECYCLE_HRIS__EVERYONE", "{calendly={}}".into()),
            ("LIFECYCLE_HRIS__RULES", HRIS_RULES.into()),
            ("LIFECYCLE_HRIS__POLL_INTERVAL", "200ms".into()),
            ("LIFECYCLE_HRIS__RETRY_MIN_DELAY", "300ms".into()),
            ("LIFECYCLE_HRIS__RETRY_MAX_DELAY", "2s".into()),
            (
                "LIFECYCLE_HRIS__BAMBOOHR__TENANTS",
                format!(
                    r#"[{{name="sim",company_id="{BAMBOOHR_COMPANY_ID}",webhook_secret="{BAMBOOHR_WEBHOOK_SECRET}",api_url="{sim_url}/bamboohr/api/gateway.php/sim-company",api_key="bamboohr-api-key"}}]"#
                ),
            ),
            (
                "LIFECYCLE_HRIS__HIBOB__TENANTS",
                format!(
                    r#"[{{name="sim",company_id="{HIBOB_COMPANY_ID}",webhook_secret="{HIBOB_WEBHOOK_SECRET}",api_url="{sim_url}/hibob/v1",service_user_id="hibob-sim-service-user",service_user_token="hibob-sim-service-token"}}]"#
                ),
            ),
            (
                "LIFECYCLE_HRIS__PERSONIO__TENANTS",
                format!(
                    r#"[{{name="sim",company_id="{PERSONIO_COMPANY_ID}",webhook_secret="{PERSONIO_WEBHOOK_SECRET}",api_url="{sim_url}/personio",client_id="personio-client-id",client_secret="personio-client-secret"}}]"#
                ),
            ),
        ] {
            env.insert(k.to_string(), v);
        }
        if db.backend == Backend::Postgres {
            // SQLite keeps its default (one connection), which the suite thereby exercises.
            env.insert("LIFECYCLE_DATABASE__MAX_CONNECTIONS".to_string(), "8".to_string());
        }
        // `{sim}` in a test's own values stands for the simulator's URL (known only once it runs).
        env.extend(opts.env.iter().map(|(k, v)| (k.clone(), v.replace("{sim}", &sim_url))));

        // The binaries migrate an older version's database themselves: the test's connection
        // must not do it first.
        let store = match opts.upgrade_from {
            Some(_) => lifecycle_store::connect(&db.url, 4).await.expect("connecting to the test database"),
            None => db.connect().await,
        };
        let mut stack = Stack {
            store,
            db,
            namespace,
            sim_url,
            producer_url: String::new(),
            admin_url: String::new(),
            http: reqwest::Client::builder().timeout(Duration::from_secs(30)).build().expect("a client"),
            sim,
            producer: None,
            workers: Vec::new(),
            log_dir,
            env,
            worker_starts: 0,
            old_topology,
            amqp,
        };
        stack.start_producer();
        for _ in 0..opts.workers {
            stack.start_worker();
        }
        stack
    }

    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.env
    }

    /// Changes a setting for the processes started from now on (a producer restarted with
    /// other rules, say).
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.insert(key.to_string(), value.replace("{sim}", &self.sim_url));
    }

    pub fn start_producer(&mut self) {
        let (p, addr) =
            Proc::start("producer", "lifecycle-producer", &[], &self.env, &self.log_dir, "intake listening on ");
        self.producer_url = addr.trim_end_matches('/').to_string();
        // Printed before the intake line, so it is in the log by now; the
        // last one, in case the producer was restarted.
        self.admin_url = p
            .log_text()
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("admin listening on "))
            .map(|a| a.trim().trim_end_matches('/').to_string())
            .unwrap_or_default();
        self.producer = Some(p);
    }

    /// Starts one more worker; returns its index.
    pub fn start_worker(&mut self) -> usize {
        self.worker_starts += 1;
        let name = format!("worker-{}", self.worker_starts);
        let (p, _) = Proc::start(&name, "lifecycle-worker", &[], &self.env, &self.log_dir, "worker metrics on ");
        self.workers.push(Some(p));
        self.workers.len() - 1
    }

    pub fn kill9_worker(&mut self, i: usize) {
        if let Some(mut p) = self.workers[i].take() {
            p.kill9();
        }
    }

    pub fn kill9_all_workers(&mut self) {
        for i in 0..self.workers.len() {
            self.kill9_worker(i);
        }
    }

    // ---- the producer ----

    pub async fn post_event(&self, body: &Value, key: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/events", self.producer_url))
            .bearer_auth(INTAKE_TOKEN)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .expect("the producer answers")
    }

    /// Posts a Pipedrive webhook body with the stack's Basic credentials.
    pub async fn post_webhook(&self, body: &Value) -> reqwest::Response {
        self.post_webhook_as(body, WEBHOOK_USER, WEBHOOK_PASSWORD).await
    }

    pub async fn post_webhook_as(&self, body: &Value, user: &str, password: &str) -> reqwest::Response {
        self.http
            .post(format!("{}/v1/webhooks/pipedrive", self.producer_url))
            .basic_auth(user, Some(password))
            .json(body)
            .send()
            .await
            .expect("the producer answers")
    }

    /// Posts an event that must be accepted; returns the 202 body.
    pub async fn accept(&self, body: &Value) -> Value {
        let key = uuid::Uuid::new_v4().to_string();
        let r = self.post_event(body, &key).await;
        let status = r.status();
        let text = r.text().await.unwrap_or_default();
        assert_eq!(status.as_u16(), 202, "the event was not accepted: {text}");
        serde_json::from_str(&text).expect("a JSON body")
    }

    /// `POST /v1/events/{id}/cancel` with the intake token: the status and the JSON body.
    pub async fn post_cancel(&self, event_id: &str) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/v1/events/{event_id}/cancel", self.producer_url))
            .bearer_auth(INTAKE_TOKEN)
            .send()
            .await
            .expect("the producer answers");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    // ---- the simulator ----

    pub async fn sim_state(&self) -> Value {
        self.http
            .get(format!("{}/_sim/state", self.sim_url))
            .send()
            .await
            .expect("sim answers")
            .json()
            .await
            .expect("sim state is JSON")
    }

    /// The simulator's call log for one vendor, oldest first.
    pub async fn sim_calls(&self, vendor: &str) -> Vec<Value> {
        let body: Value = self
            .http
            .get(format!("{}/_sim/calls?vendor={vendor}", self.sim_url))
            .send()
            .await
            .expect("sim answers")
            .json()
            .await
            .expect("the call log is JSON");
        body["calls"].as_array().cloned().unwrap_or_default()
    }

    pub async fn sim_seed(&self, seed: Value) -> Value {
        let r = self.http.post(format!("{}/_sim/seed", self.sim_url)).json(&seed).send().await.expect("sim answers");
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "seeding failed: {status} {body}");
        body
    }

    pub async fn sim_fault(&self, fault: Value) {
        let r = self.http.post(format!("{}/_sim/faults", self.sim_url)).json(&fault).send().await.expect("sim answers");
        assert!(r.status().is_success(), "adding a fault failed: {}", r.text().await.unwrap_or_default());
    }

    pub async fn sim_config(&self, config: Value) {
        let r =
            self.http.post(format!("{}/_sim/config", self.sim_url)).json(&config).send().await.expect("sim answers");
        assert!(r.status().is_success(), "configuring the sim failed: {}", r.text().await.unwrap_or_default());
    }

    // ---- the database ----

    pub async fn runs(&self) -> Vec<Run> {
        lifecycle_store::runs::list(&self.store, &Default::default()).await.expect("listing runs")
    }

    pub async fn runs_of(&self, event_id: &str) -> Vec<Run> {
        lifecycle_store::runs::for_event(&self.store, event_id).await.expect("listing runs")
    }

    /// Rows in one table.
    pub async fn count(&self, table: &str) -> i64 {
        use sea_orm::{ConnectionTrait, Statement};
        let backend = self.store.get_database_backend();
        let row = self
            .store
            .query_one(Statement::from_string(backend, format!("SELECT COUNT(*) AS n FROM {table}")))
            .await
            .expect("counting rows")
            .expect("a count");
        row.try_get::<i64>("", "n").expect("a number")
    }

    /// Waits until every run of the event has ended; returns them.
    /// On timeout it panics with the runs' states and every process's log, so
    /// that a failure in CI says why.
    pub async fn wait_event(&self, event_id: &str, timeout: Duration) -> Vec<Run> {
        let ended = [RunState::Succeeded, RunState::NeedsManualAction, RunState::Dead];
        let done = crate::poll(timeout, || async {
            let runs = self.runs_of(event_id).await;
            (!runs.is_empty() && runs.iter().all(|r| ended.contains(&r.state))).then_some(runs)
        })
        .await;
        if let Some(runs) = done {
            return runs;
        }
        let states: Vec<_> = self.runs_of(event_id).await.iter().map(|r| (r.vendor, r.state)).collect();
        panic!(
            "timed out after {timeout:?} waiting for every run of event {event_id} to end; runs: {states:?}\n{}",
            self.logs()
        )
    }

    /// Waits until every run in the database has ended. Polls a count, so
    /// that waiting on thousands of runs costs the system under test nothing.
    pub async fn wait_all(&self, timeout: Duration) -> Vec<Run> {
        crate::eventually(timeout, "every run to end", || async {
            let open = lifecycle_store::runs::count_unfinished(&self.store).await.expect("counting runs");
            (open == 0).then_some(())
        })
        .await;
        let runs = self.runs().await;
        assert!(!runs.is_empty(), "there were no runs to wait for");
        runs
    }

    /// Logs of every process, for assertion messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(&self.log_dir) {
            for e in entries.flatten() {
                out.push_str(&format!(
                    "==== {}\n{}\n",
                    e.path().display(),
                    std::fs::read_to_string(e.path()).unwrap_or_default()
                ));
            }
        }
        out
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for w in self.workers.iter_mut() {
            if let Some(mut p) = w.take() {
                p.kill9();
            }
        }
        if let Some(mut p) = self.producer.take() {
            p.kill9();
        }
        // Remove this test's queues and exchanges, not while a restarted broker is still settling.
        crate::broker::wait_until_settled();
        let topology = lifecycle_broker::Topology::new(self.namespace.clone());
        let (mut queues, mut exchanges) = std::mem::take(&mut self.old_topology);
        let amqp = self.amqp.clone();
        queues.extend(topology.queues());
        exchanges.extend(topology.exchanges());
        for names in [&mut queues, &mut exchanges] {
            names.sort();
            names.dedup();
        }
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async move {
                use lifecycle_broker::lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
                let conn = lifecycle_broker::connect(&amqp, "e2e-cleanup").await.ok()?;
                let ch = conn.create_channel().await.ok()?;
                for q in queues {
                    let _ = ch.queue_delete(q.into(), QueueDeleteOptions::default()).await;
                }
                for e in exchanges {
                    let _ = ch.exchange_delete(e.into(), ExchangeDeleteOptions::default()).await;
                }
                let _ = conn.close(200, "cleanup".into()).await;
                Some(())
            })
        })
        .join();
    }
}

async fn check_broker(url: &str) {
    if let Err(e) = lifecycle_broker::connect(url, "e2e-check").await.map(drop) {
        panic!("RabbitMQ must be running at {} for the end-to-end tests (the machine's: start it with `rabbitmq-server -detached`; the cluster's: scripts/cluster start): {e}", url.rsplit('@').next().unwrap_or(url));
    }
}

impl Stack {
    /// Publishes raw bytes to this stack's Pipedrive lane, as a buggy or hostile producer might.
    pub async fn publish_raw(&self, payload: &[u8]) {
        use lifecycle_broker::lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
        use lifecycle_broker::lapin::BasicProperties;
        let topology = lifecycle_broker::Topology::new(self.namespace.clone());
        let conn = lifecycle_broker::connect(&crate::amqp_url(), "e2e-raw").await.expect("RabbitMQ");
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
        ch.basic_publish(
            topology.lanes_exchange().into(),
            lifecycle_broker::now_key(lifecycle_domain::VendorKind::Pipedrive).into(),
            BasicPublishOptions { mandatory: true, ..Default::default() },
            payload,
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .unwrap()
        .await
        .unwrap();
        let _ = conn.close(200, "done".into()).await;
    }

    /// Takes every message currently in this stack's dead-letter queue: (payload, x-death count).
    pub async fn take_dead_letters(&self) -> Vec<(Vec<u8>, Option<i64>)> {
        use lifecycle_broker::lapin::options::{BasicAckOptions, BasicGetOptions};
        use lifecycle_broker::lapin::types::AMQPValue;
        let topology = lifecycle_broker::Topology::new(self.namespace.clone());
        let conn = lifecycle_broker::connect(&crate::amqp_url(), "e2e-dead").await.expect("RabbitMQ");
        let ch = conn.create_channel().await.unwrap();
        let mut out = Vec::new();
        while let Some(msg) = ch.basic_get(topology.dead_queue().into(), BasicGetOptions::default()).await.unwrap() {
            let deaths = msg.delivery.properties.headers().as_ref().and_then(|h| {
                h.inner().get("x-death").and_then(|v| match v {
                    AMQPValue::FieldArray(a) => a.as_slice().first().and_then(|d| match d {
                        AMQPValue::FieldTable(t) => t.inner().get("count").and_then(|c| match c {
                            AMQPValue::LongLongInt(n) => Some(*n),
                            AMQPValue::LongInt(n) => Some(*n as i64),
                            _ => None,
                        }),
                        _ => None,
                    }),
                    _ => None,
                })
            });
            out.push((msg.delivery.data.clone(), deaths));
            msg.delivery.acker.ack(BasicAckOptions::default()).await.unwrap();
        }
        let _ = conn.close(200, "done".into()).await;
        out
    }

    /// Empties this stack's lanes: the messages are lost, as if the broker lost them.
    pub async fn purge_lanes(&self) -> u32 {
        use lifecycle_broker::lapin::options::QueuePurgeOptions;
        let topology = lifecycle_broker::Topology::new(self.namespace.clone());
        let conn = lifecycle_broker::connect(&crate::amqp_url(), "e2e-purge").await.expect("RabbitMQ");
        let ch = conn.create_channel().await.unwrap();
        let mut n = 0;
        for lane in topology.lane_queues() {
            n += ch.queue_purge(lane.into(), QueuePurgeOptions::default()).await.unwrap();
        }
        let _ = conn.close(200, "done".into()).await;
        n
    }

    /// SIGTERM a worker and wait for it to exit; true if it exited within `timeout`.
    pub fn terminate_worker(&mut self, i: usize, timeout: Duration) -> bool {
        match self.workers[i].take() {
            Some(mut p) => p.terminate(timeout),
            None => true,
        }
    }
}
