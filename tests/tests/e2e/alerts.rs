//! The alert rules and the dashboard against a real run (issue 18): a stack
//! whose Pipedrive joiner dies (an unknown role), among the other things a
//! day brings (a joiner at every vendor through a 429 and a 503, a scheduled
//! run, a rejected event, a replay, a failed login, a poison message, a
//! reconcile pass). The worker's and the producer's own `/metrics` text,
//! scraped before and after, becomes promtool's input series, and promtool
//! evaluates `deploy/prometheus/alerts.yml` over them: the dead-runs rule's
//! expression returns a value and the alert fires. Every metric a dashboard
//! panel or an alert uses appears in that text (or is allowlisted below with
//! why), and every metric in the text is in `deploy/prometheus/metrics.txt`.
//!
//! promtool is required: `scripts/check-observability` installs it (Debian
//! package `prometheus`). SQLite only: the metrics do not depend on the
//! database, and this keeps the suite short.

use lifecycle_domain::RunState;
use lifecycle_e2e::stack::{contract_joiner, pipedrive_joiner};
use lifecycle_e2e::{Backend, Stack, StackOptions};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(90);

/// Metrics the dashboard or the alerts use that this run does not produce, and why.
const ONLY_LATER: &[(&str, &str)] = &[
    ("lifecycle_webhooks_total", "counted from the first Pipedrive webhook; this run sends none"),
    ("lifecycle_webhooks_rejected_total", "counted from the first refused Pipedrive webhook"),
    (
        "lifecycle_leases_lost_total",
        "only when a stalled worker finds its lease taken (tests/tests/e2e/lease_guards.rs)",
    ),
    ("lifecycle_sweeper_republished_total", "only when a run's message was lost (tests/tests/e2e/reliability.rs)"),
    (
        "lifecycle_notifications_sent_total",
        "counted from the first notification; this run configures no webhook (services/worker/tests/notifications.rs)",
    ),
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn promtool() -> &'static str {
    match std::process::Command::new("promtool").arg("--version").output() {
        Ok(out) if out.status.success() => "promtool",
        _ => panic!(
            "promtool is required for the alert tests and is not installed: run scripts/check-observability \
             (it installs it), or `apt-get install prometheus`"
        ),
    }
}

/// The `lifecycle_*` names in a PromQL expression.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("lifecycle_") {
        let before = rest[..i].chars().last();
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(tail.len());
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            out.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    out
}

/// Every query of the dashboard.
fn dashboard_exprs() -> Vec<String> {
    let dash: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("deploy/grafana/lifecycle.json")).unwrap()).unwrap();
    fn walk(panels: &Value, out: &mut Vec<String>) {
        for p in panels.as_array().into_iter().flatten() {
            walk(&p["panels"], out);
            for t in p["targets"].as_array().into_iter().flatten() {
                out.push(t["expr"].as_str().expect("every target has an expr").to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    for v in dash["templating"]["list"].as_array().unwrap() {
        if let Some(q) = v["query"]["query"].as_str() {
            out.push(q.to_string());
        }
    }
    assert!(out.len() > 20, "the dashboard's queries were not found: {out:?}");
    out
}

/// Every alert of alerts.yml: name → expression.
fn alert_rules() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(repo().join("deploy/prometheus/alerts.yml")).unwrap();
    let doc = &yaml_rust2::YamlLoader::load_from_str(&text).unwrap()[0];
    let mut out = BTreeMap::new();
    for group in doc["groups"].as_vec().unwrap() {
        for rule in group["rules"].as_vec().unwrap() {
            if let (Some(name), Some(expr)) = (rule["alert"].as_str(), rule["expr"].as_str()) {
                out.insert(name.to_string(), expr.trim().to_string());
            }
        }
    }
    out
}

/// The samples of a Prometheus text exposition: series (`name{labels}`) → value.
fn samples(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let split = match line.rfind('}') {
            Some(close) => close + 1,
            None => line.find(' ').expect("a sample line has a value"),
        };
        let (series, value) = line.split_at(split);
        let value = value.split_whitespace().next().expect("a sample line has a value");
        out.insert(series.trim().to_string(), value.to_string());
    }
    out
}

/// `name{labels}` with `job="..."` added, so that the producer's series and the worker's stay apart.
fn with_job(series: &str, job: &str) -> String {
    match series.find('{') {
        Some(i) if series.ends_with("{}") => format!("{}{{job=\"{job}\"}}", &series[..i]),
        Some(i) => format!("{}{{job=\"{job}\",{}", &series[..i], &series[i + 1..]),
        None => format!("{series}{{job=\"{job}\"}}"),
    }
}

fn metric_name(series: &str) -> &str {
    series.split('{').next().unwrap()
}

async fn scrape(stack: &Stack, url: &str) -> String {
    let r = stack.http.get(url).send().await.unwrap_or_else(|e| panic!("scraping {url}: {e}"));
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.text().await.unwrap()
}

pub(crate) fn worker_metrics_url(stack: &Stack) -> String {
    let log = stack.workers[0].as_ref().expect("the worker runs").log_text();
    log.lines()
        .find_map(|l| l.strip_prefix("worker metrics on "))
        .expect("the worker printed its metrics address")
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_run_in_a_real_workers_metrics_fires_the_dead_runs_alert_and_the_dashboard_has_its_metrics() {
    let promtool = promtool();
    let stack = Stack::start(
        StackOptions::new(Backend::Sqlite, "alerts")
            // A pass per vendor at start, so that the reconcile metrics are there.
            .env("LIFECYCLE_RECONCILE__INTERVAL", "1h"),
    )
    .await;
    let worker = worker_metrics_url(&stack);
    let producer = format!("{}/metrics", stack.producer_url);

    // Before: the worker reports every state at every vendor, all zero.
    let before = lifecycle_e2e::eventually(WAIT, "the worker to report lifecycle_runs", || async {
        let text = scrape(&stack, &worker).await;
        text.contains("lifecycle_runs{").then_some(text)
    })
    .await;
    let producer_before = scrape(&stack, &producer).await;
    let dead_before = samples(&before)
        .into_iter()
        .filter(|(s, v)| s.starts_with("lifecycle_runs{") && s.contains(r#"state="dead""#) && v != "0")
        .collect::<Vec<_>>();
    assert!(dead_before.is_empty(), "no dead run yet: {dead_before:?}");

    // The day: a joiner at every vendor through a 429 and a 503 (Jira), a dead
    // Pipedrive joiner, a scheduled one, a rejected event, a replay, a failed
    // login, a poison message.
    stack
        .sim_fault(json!({"vendor": "jira", "method": "GET", "path": "/user/search", "kind": "status", "status": 429}))
        .await;
    stack
        .sim_fault(json!({"vendor": "jira", "method": "POST", "path": "/group/user", "kind": "status", "status": 503}))
        .await;
    let everywhere = stack.accept(&contract_joiner()).await;
    let dead = stack.accept(&pipedrive_joiner("E-2", "nobody@example.com", "No Such Role")).await;
    let soon = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let mut scheduled = pipedrive_joiner("E-3", "later@example.com", "Sales Rep");
    scheduled["effective_at"] = json!(soon);
    let scheduled = stack.accept(&scheduled).await;
    let bad = stack.post_event(&json!({"type": "joiner"}), "bad-1").await;
    assert_eq!(bad.status().as_u16(), 400);
    let again = pipedrive_joiner("E-4", "twice@example.com", "Sales Rep");
    assert_eq!(stack.post_event(&again, "twice").await.status().as_u16(), 202);
    let replayed = stack.post_event(&again, "twice").await;
    assert_eq!(replayed.headers().get("idempotent-replayed").map(|v| v.to_str().unwrap()), Some("true"));
    let unauthorized = stack
        .http
        .post(format!("{}/v1/events", stack.producer_url))
        .bearer_auth("not-the-token")
        .header("Idempotency-Key", "nope")
        .json(&again)
        .send()
        .await
        .unwrap();
    assert_eq!(unauthorized.status().as_u16(), 401);
    stack.publish_raw(b"not a dispatch").await;

    for accepted in [&everywhere, &dead, &scheduled] {
        stack.wait_event(accepted["event_id"].as_str().unwrap(), WAIT).await;
    }
    let runs = stack.wait_all(WAIT).await;
    let states: Vec<_> = runs.iter().map(|r| (r.person_key.as_str(), r.vendor, r.state)).collect();
    let dead_runs: Vec<_> = runs.iter().filter(|r| r.state == RunState::Dead).collect();
    assert_eq!(dead_runs.len(), 1, "exactly the unknown role died: {states:?}\n{}", stack.logs());
    // CircleCI cannot invite: its joiner waits for a person, which is no trouble an alert wants.
    let fine = [RunState::Succeeded, RunState::NeedsManualAction];
    assert!(runs.iter().filter(|r| r.state != RunState::Dead).all(|r| fine.contains(&r.state)), "{states:?}");

    // After: wait for the reconcile passes and the poison message to be counted.
    let after =
        lifecycle_e2e::eventually(WAIT, "the worker to report reconcile passes and the poison message", || async {
            let text = scrape(&stack, &worker).await;
            let passes =
                text.lines().filter(|l| l.starts_with("lifecycle_reconcile_last_success_timestamp_seconds{")).count();
            // Four: CircleCI is not reconcilable (no member list in its API), so it has no pass.
            (passes == 4 && text.contains("lifecycle_poison_messages_total")).then_some(text)
        })
        .await;
    let producer_after = scrape(&stack, &producer).await;
    let dir = stack.log_dir.join("alerts");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in [
        ("worker-before.prom", &before),
        ("worker-after.prom", &after),
        ("producer-before.prom", &producer_before),
        ("producer-after.prom", &producer_after),
    ] {
        std::fs::write(dir.join(name), text).unwrap();
    }

    // The scrapes as promtool's input: the first at 0m, the second from 1m to 10m.
    let mut series: BTreeMap<String, (Option<String>, String)> = BTreeMap::new();
    for (job, first, second) in [("worker", &before, &after), ("producer", &producer_before, &producer_after)] {
        let first = samples(first);
        for (s, v) in samples(second) {
            series.insert(with_job(&s, job), (first.get(&s).cloned(), v));
        }
    }
    let rules = alert_rules();
    let dead_expr = rules.get("LifecycleDeadRuns").expect("alerts.yml has LifecycleDeadRuns");
    let mut test = String::from(
        "rule_files:\n  - alerts.yml\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n",
    );
    for (s, (first, second)) in &series {
        let first = first.clone().unwrap_or_else(|| "_".into());
        test.push_str(&format!("      - series: {}\n        values: '{first} {second}x9'\n", json!(s)));
    }
    test.push_str(&format!(
        "    promql_expr_test:\n\
         \x20     - expr: {expr}\n        eval_time: 0m\n        exp_samples: []\n\
         \x20     - expr: {expr}\n        eval_time: 2m\n        exp_samples:\n          - labels: '{{vendor=\"pipedrive\"}}'\n            value: 1\n\
         \x20     - expr: 'ALERTS{{alertname=\"LifecycleDeadRuns\"}}'\n        eval_time: 2m\n        exp_samples:\n\
         \x20         - labels: 'ALERTS{{alertname=\"LifecycleDeadRuns\",alertstate=\"firing\",severity=\"page\",vendor=\"pipedrive\"}}'\n            value: 1\n",
        expr = json!(dead_expr)
    ));
    // The other alerts stay quiet on this healthy run (the dead run is the only trouble in it).
    let quiet: Vec<&String> = rules.keys().filter(|a| *a != "LifecycleDeadRuns").collect();
    for alert in &quiet {
        test.push_str(&format!(
            "      - expr: 'ALERTS{{alertname=\"{alert}\"}}'\n        eval_time: 10m\n        exp_samples: []\n"
        ));
    }
    // promtool resolves rule_files against the test file's directory.
    let work = tempfile::tempdir().unwrap();
    std::fs::copy(repo().join("deploy/prometheus/alerts.yml"), work.path().join("alerts.yml")).unwrap();
    std::fs::write(work.path().join("run.test.yml"), &test).unwrap();
    std::fs::write(dir.join("run.test.yml"), &test).unwrap();
    let out = std::process::Command::new(promtool)
        .args(["test", "rules", "run.test.yml"])
        .current_dir(work.path())
        .output()
        .expect("running promtool");
    assert!(
        out.status.success(),
        "promtool test rules on the run's metrics failed (the test file is {}):\n{}{}",
        dir.join("run.test.yml").display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Every metric the dashboard or an alert uses is in this run's /metrics, or said why not.
    let scraped: BTreeSet<String> =
        series.keys().map(|s| metric_name(s).to_string()).filter(|n| n.starts_with("lifecycle_")).collect();
    let used: BTreeSet<String> = dashboard_exprs().iter().chain(rules.values()).flat_map(|e| metric_names(e)).collect();
    let later: BTreeSet<String> = ONLY_LATER.iter().map(|(n, _)| n.to_string()).collect();
    let missing: Vec<&String> = used.iter().filter(|n| !scraped.contains(*n) && !later.contains(*n)).collect();
    assert!(missing.is_empty(), "used by the dashboard or an alert, not in the run's /metrics: {missing:?}");
    let stale: Vec<&String> = later.iter().filter(|n| scraped.contains(*n) || !used.contains(*n)).collect();
    assert!(stale.is_empty(), "allowlisted but scraped after all, or no longer used: {stale:?}");

    // And metrics.txt, generated from the code, names everything the run exposed.
    let listed: BTreeSet<String> = std::fs::read_to_string(repo().join("deploy/prometheus/metrics.txt"))
        .unwrap()
        .split_whitespace()
        .map(String::from)
        .collect();
    let unlisted: Vec<&String> = scraped.iter().filter(|n| !listed.contains(*n)).collect();
    assert!(
        unlisted.is_empty(),
        "exposed but not in deploy/prometheus/metrics.txt (scripts/check-observability --write): {unlisted:?}"
    );
}
