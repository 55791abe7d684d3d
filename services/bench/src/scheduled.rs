//! `scheduled`: runs all due at one moment: the worker's RSS, and how late they were released and started.

use crate::harness::{post_all, rss_mb, unlimited};
use anyhow::Context;
use lifecycle_domain::RunState;
use lifecycle_e2e::{Backend, Stack, StackOptions};
use serde_json::{json, Value};
use std::time::Duration;

/// The minimum, the 50th and 95th percentiles and the maximum of `v`, in seconds.
#[derive(Debug, Clone, Copy)]
pub struct Spread {
    pub min: f64,
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
}

impl Spread {
    fn of(mut v: Vec<f64>) -> Spread {
        if v.is_empty() {
            return Spread { min: f64::NAN, p50: f64::NAN, p95: f64::NAN, max: f64::NAN };
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let pct = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
        Spread { min: v[0], p50: pct(0.5), p95: pct(0.95), max: v[v.len() - 1] }
    }
}

impl std::fmt::Display for Spread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "min {:.3} s, p50 {:.3} s, p95 {:.3} s, max {:.3} s", self.min, self.p50, self.p95, self.max)
    }
}

pub struct Scheduled {
    pub backend: Backend,
    pub runs: usize,
    /// From the first post to the last 202.
    pub post_s: f64,
    /// From the last 202 to the moment every run was due.
    pub margin_s: f64,
    /// The worker's resident set (VmRSS) once started, idle; with every run
    /// scheduled, just before they were due; once every run had ended.
    pub rss_idle_mb: f64,
    pub rss_waiting_mb: f64,
    pub rss_after_mb: f64,
    /// The worker's peak resident set (VmHWM) over the whole measurement.
    pub rss_peak_mb: f64,
    /// Due (`effective_at`) to released by the scheduler (moved to `queued`,
    /// then published): each run's `late_ms` in the worker's log.
    pub released: Spread,
    /// How many runs the worker's log says the scheduler released.
    pub released_logged: usize,
    /// Due to claimed by the worker (`started_at`): the release, the broker, and the queue of runs due together.
    pub started: Spread,
    /// Due to the last run's end.
    pub all_done_s: f64,
    /// `lifecycle_schedule_lateness_seconds` on the worker's /metrics: count and mean.
    pub histogram_count: u64,
    pub histogram_mean_s: f64,
    /// Its cumulative buckets: (upper bound, observations at or below).
    pub histogram_buckets: Vec<(String, u64)>,
    pub not_succeeded: usize,
    pub deactivated: usize,
}

impl Scheduled {
    pub(crate) fn print(&self) {
        println!("\n## scheduled: {} Pipedrive leavers due at one moment, on {:?}", self.runs, self.backend);
        println!(
            "posting           {:.1} s; the last 202 came {:.1} s before they were all due",
            self.post_s, self.margin_s
        );
        println!(
            "worker RSS        idle {:.1} MB, all scheduled {:.1} MB, all done {:.1} MB (peak {:.1} MB)",
            self.rss_idle_mb, self.rss_waiting_mb, self.rss_after_mb, self.rss_peak_mb
        );
        println!("due -> released   {} ({} runs in the worker's log)", self.released, self.released_logged);
        println!("due -> started    {}", self.started);
        println!("due -> all ended  {:.1} s", self.all_done_s);
        println!(
            "histogram         lifecycle_schedule_lateness_seconds: {} observations, mean {:.3} s",
            self.histogram_count, self.histogram_mean_s
        );
        let buckets: Vec<String> =
            self.histogram_buckets.iter().filter(|(_, n)| *n > 0).map(|(le, n)| format!("<= {le} s: {n}")).collect();
        println!("                  buckets (cumulative, the non-empty ones) {}", buckets.join(", "));
        println!("accounts gone     {} of {}", self.deactivated, self.runs);
        if self.not_succeeded > 0 {
            println!("WARNING           {} runs did not succeed", self.not_succeeded);
        }
    }

    pub(crate) fn summary(rows: &[Scheduled]) {
        if rows.len() < 2 {
            return;
        }
        println!("\n## scheduled: side by side");
        println!(
            "{:<9} {:>7} {:>22} {:>24} {:>24} {:>10}",
            "db", "runs", "RSS idle/sched/after", "released p50/p95/max", "started p50/p95/max", "peak RSS"
        );
        for r in rows {
            println!(
                "{:<9} {:>7} {:>6.1}/{:>6.1}/{:>6.1} MB {:>6.2}/{:>6.2}/{:>6.2} s {:>6.2}/{:>6.2}/{:>6.2} s {:>7.1} MB",
                format!("{:?}", r.backend),
                r.runs,
                r.rss_idle_mb,
                r.rss_waiting_mb,
                r.rss_after_mb,
                r.released.p50,
                r.released.p95,
                r.released.max,
                r.started.p50,
                r.started.p95,
                r.started.max,
                r.rss_peak_mb
            );
        }
    }
}

/// A Pipedrive leaver for `bench{i}@example.com`, due at `effective_at`.
fn scheduled_leaver(i: usize, effective_at: &str) -> Value {
    json!({
        "type": "leaver",
        "occurred_at": "2026-11-22T18:00:00Z",
        "effective_at": effective_at,
        "employee": {"id": format!("B-{i}"), "email": format!("bench{i}@example.com")},
        "apps": {"pipedrive": {}}
    })
}

/// A histogram's cumulative buckets on a Prometheus text page (one label set).
fn histogram_buckets(page: &str, name: &str) -> Vec<(String, u64)> {
    page.lines()
        .filter(|l| l.starts_with(&format!("{name}_bucket")))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?.to_string();
            let n = l.rsplit(' ').next()?.parse::<f64>().ok()? as u64;
            Some((le, n))
        })
        .collect()
}

/// A log line without its terminal colours.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters, then a final letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The value of `name=value` in a log line.
fn field_value<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let at = line.find(&format!(" {name}="))? + name.len() + 2;
    line[at..].split_whitespace().next()
}

/// The sum and count of a histogram on a Prometheus text page (all its label sets).
fn histogram_sum_count(page: &str, name: &str) -> (f64, u64) {
    let value = |suffix: &str| -> f64 {
        page.lines()
            .filter(|l| l.starts_with(&format!("{name}{suffix}")))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    (value("_sum"), value("_count") as u64)
}

pub async fn scheduled(runs: usize, backend: Backend, due_in: Option<u64>) -> anyhow::Result<Scheduled> {
    anyhow::ensure!(runs >= 1, "--runs: at least one");
    let stack = Stack::start(
        unlimited(StackOptions::new(backend, "bench-scheduled"), &["pipedrive"])
            .env("LIFECYCLE_WORKER__CONCURRENCY", "64")
            .env("LIFECYCLE_BROKER__PREFETCH", "64")
            .env("LIFECYCLE_DATABASE__MAX_CONNECTIONS", "4")
            // The sweeper as configured by default (the test stacks look every
            // second and republish after 3 s): a backlog of runs due together
            // is not republished while the worker works through it.
            .env("LIFECYCLE_WORKER__SWEEP_INTERVAL", "10s")
            .env("LIFECYCLE_WORKER__SWEEP_GRACE", "30s")
            // Each release is logged with its lateness.
            .env("RUST_LOG", "warn,lifecycle_engine::scheduler=info"),
    )
    .await;
    let worker = stack.workers[0].as_ref().context("the worker runs")?;
    let pid = worker.child.id();
    let metrics_url = worker
        .log_text()
        .lines()
        .find_map(|l| l.strip_prefix("worker metrics on "))
        .map(|u| u.trim().to_string())
        .context("the worker printed its metrics address")?;
    // Every leaver has an account to deactivate.
    for chunk in (0..runs).collect::<Vec<_>>().chunks(1000) {
        let users: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"name": format!("Bench {i}"), "email": format!("bench{i}@example.com")}))
            .collect();
        stack.sim_seed(json!({"pipedrive": {"users": users}})).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle_mb = rss_mb(pid, "VmRSS:");

    let due_in = Duration::from_secs(due_in.unwrap_or(10 + runs as u64 / 250));
    let first_post = chrono::Utc::now();
    let due = first_post + chrono::Duration::from_std(due_in)?;
    let effective_at = due.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    eprintln!("scheduled ({backend:?}): posting {runs} Pipedrive leavers, all due at {effective_at}");
    let events: Vec<Value> = (0..runs).map(|i| scheduled_leaver(i, &effective_at)).collect();
    let post = post_all(&stack, events, 32).await?;
    let margin = due - chrono::Utc::now();
    let counts = lifecycle_store::runs::counts(&stack.store).await?;
    let waiting: i64 = counts.iter().filter(|(s, _, _)| *s == RunState::Scheduled).map(|(_, _, n)| n).sum();
    let waiting = waiting as usize;
    anyhow::ensure!(
        waiting == runs && margin > chrono::Duration::milliseconds(500),
        "posting took {:.1} s, too close to the due time ({} of {runs} runs scheduled): raise --due-in",
        post.as_secs_f64(),
        waiting
    );
    // Just before they are due: the worker holds nothing for them.
    tokio::time::sleep((margin - chrono::Duration::milliseconds(300)).to_std().unwrap_or_default()).await;
    let rss_waiting_mb = rss_mb(pid, "VmRSS:");

    let ended = stack.wait_all(Duration::from_secs(1800)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_after_mb = rss_mb(pid, "VmRSS:");
    let rss_peak_mb = rss_mb(pid, "VmHWM:");
    let page = stack.http.get(&metrics_url).send().await?.text().await?;
    let (sum, count) = histogram_sum_count(&page, "lifecycle_schedule_lateness_seconds");
    let histogram_buckets = histogram_buckets(&page, "lifecycle_schedule_lateness_seconds");

    let secs = |d: chrono::Duration| d.num_microseconds().unwrap_or(i64::MAX) as f64 / 1e6;
    let due_of = |r: &lifecycle_store::entity::run::Model| r.effective_at.unwrap_or(r.next_attempt_at);
    let log = stack.workers[0].as_ref().context("the worker runs")?.log_text();
    let released_ms: Vec<f64> = log
        .lines()
        .filter(|l| l.contains("scheduled run is due: started"))
        .filter_map(|l| field_value(&strip_ansi(l), "late_ms")?.parse::<f64>().ok())
        .collect();
    let released_logged = released_ms.len();
    let released = Spread::of(released_ms.into_iter().map(|ms| ms / 1000.0).collect());
    let started = Spread::of(ended.iter().filter_map(|r| Some(secs(r.started_at? - due_of(r)))).collect());
    let last_end = ended.iter().filter_map(|r| r.finished_at).max().context("runs ended")?;
    let state = stack.sim_state().await;
    let deactivated =
        lifecycle_e2e::sim::actions(&state, "pipedrive").iter().filter(|a| *a == "user.deactivate").count();
    Ok(Scheduled {
        backend,
        runs,
        post_s: post.as_secs_f64(),
        margin_s: secs(margin),
        rss_idle_mb,
        rss_waiting_mb,
        rss_after_mb,
        rss_peak_mb,
        released,
        released_logged,
        started,
        all_done_s: secs(last_end - due),
        histogram_count: count,
        histogram_mean_s: if count > 0 { sum / count as f64 } else { f64::NAN },
        histogram_buckets,
        not_succeeded: ended.iter().filter(|r| r.state != RunState::Succeeded).count(),
        deactivated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_lateness_is_read_from_a_coloured_log_line() {
        let line = "\u{1b}[2m2026-11-30T01:36:07.2Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m \u{1b}[2mlifecycle_engine::scheduler\u{1b}[0m\u{1b}[2m:\u{1b}[0m scheduled run is due: started \u{1b}[3mrun_id\u{1b}[0m\u{1b}[2m=\u{1b}[0m01a2 \u{1b}[3mlate_ms\u{1b}[0m\u{1b}[2m=\u{1b}[0m1112";
        assert_eq!(field_value(&strip_ansi(line), "late_ms"), Some("1112"));
        assert_eq!(field_value("a late_ms=7 b=1", "late_ms"), Some("7"));
        assert_eq!(field_value("a b=1", "late_ms"), None);
    }
}
