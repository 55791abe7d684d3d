//! `fleet`: 1, 2 and 4 workers on one Pipedrive credential: the request rate against the budget.

use crate::cli::FleetArgs;
use crate::harness::post_all;
use lifecycle_domain::RunState;
use lifecycle_e2e::{Backend, Stack, StackOptions};
use serde_json::Value;
use std::time::{Duration, Instant};

pub struct FleetRow {
    pub workers: usize,
    pub calls: usize,
    pub busy: lifecycle_e2e::lanes::BusyRate,
    pub busiest_window: usize,
    pub rate_limited: u64,
    pub wave_s: f64,
    pub not_succeeded: usize,
}

pub struct Fleet {
    pub joiners: usize,
    pub rows: Vec<FleetRow>,
}

impl Fleet {
    pub(crate) fn print(&self) {
        println!(
            "\n## fleet: {} Pipedrive joiners, workers sharing one credential, the simulator enforcing 80 requests / 2 s",
            self.joiners
        );
        println!("(rate: requests answered in the whole 2 s windows between the first and the last call, per second)");
        println!(
            "{:>7} {:>8} {:>10} {:>12} {:>10} {:>14} {:>6} {:>8}",
            "workers", "calls", "wave", "rate", "of 40/s", "busiest window", "429s", ">= 90%"
        );
        for r in &self.rows {
            let fraction = r.busy.per_s / 40.0;
            println!(
                "{:>7} {:>8} {:>8.1} s {:>10.1}/s {:>9.1}% {:>11} / 80 {:>6} {:>8}",
                r.workers,
                r.calls,
                r.wave_s,
                r.busy.per_s,
                100.0 * fraction,
                r.busiest_window,
                r.rate_limited,
                if fraction >= 0.9 && r.rate_limited == 0 { "met" } else { "MISSED" }
            );
            if r.not_succeeded > 0 {
                println!("WARNING: {} runs did not succeed with {} workers", r.not_succeeded, r.workers);
            }
        }
    }
}

pub async fn fleet(args: &FleetArgs) -> anyhow::Result<Fleet> {
    use lifecycle_e2e::lanes::{busiest_window, busy_rate, wave_joiner};
    let mut rows = Vec::new();
    for &n in &args.workers {
        anyhow::ensure!(n >= 1, "--workers: at least one");
        let stack =
            Stack::start(StackOptions::new(Backend::Sqlite, "bench-fleet").env("RUST_LOG", "warn").workers(n)).await;
        let events: Vec<Value> = (0..args.joiners).map(|i| wave_joiner(i, &["pipedrive"])).collect();
        eprintln!("fleet: {} Pipedrive joiners, {n} workers", args.joiners);
        let started = Instant::now();
        post_all(&stack, events, 32).await?;
        let runs = stack.wait_all(Duration::from_secs(3600)).await;
        let wave_s = started.elapsed().as_secs_f64();
        let calls = stack.sim_calls("pipedrive").await;
        let state = stack.sim_state().await;
        rows.push(FleetRow {
            workers: n,
            calls: calls.len(),
            busy: busy_rate(&calls, 2000),
            busiest_window: busiest_window(&calls, 2000),
            rate_limited: state["pipedrive"]["counters"]["rate_limited"].as_u64().unwrap_or(0),
            wave_s,
            not_succeeded: runs.iter().filter(|r| r.state != RunState::Succeeded).count(),
        });
    }
    Ok(Fleet { joiners: args.joiners, rows })
}
