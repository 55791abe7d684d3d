//! `layoff`: leavers at every vendor, the simulator's limits on: each vendor's time in one wave and alone.

use crate::cli::{LayoffArgs, Limit};
use crate::harness::{post_all, vendor_list};
use lifecycle_domain::VendorKind;
use lifecycle_e2e::{Backend, Stack, StackOptions};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// One wave's figures for one vendor.
#[derive(Debug, Clone)]
pub struct VendorWave {
    /// From the first post until the vendor's last account was gone; where lifecycle removes
    /// nobody (`handed_over`), until its last run ended handing the removal to a person.
    pub last_gone_s: f64,
    /// The vendor's leavers end `needs_manual_action` and nothing is removed (CircleCI).
    pub handed_over: bool,
    pub requests: u64,
    pub rate_limited: u64,
}

pub struct Layoff {
    pub people: usize,
    pub vendors: Vec<&'static str>,
    pub limits: Vec<Limit>,
    pub wave: std::collections::BTreeMap<String, VendorWave>,
    pub alone: std::collections::BTreeMap<String, VendorWave>,
    pub wave_s: f64,
    /// Runs that did not end as their vendor's do (`lanes::end_state`).
    pub unexpected: usize,
}

impl Layoff {
    pub(crate) fn print(&self) {
        println!("\n## layoff: {} leavers x {}, the simulator's limits on", self.people, self.vendors.join(" + "));
        if self.limits.is_empty() {
            println!("budgets           each vendor's documented limit");
        } else {
            let l: Vec<String> =
                self.limits.iter().map(|l| format!("{} {} per {} ms", l.vendor, l.requests, l.window_ms)).collect();
            println!("budgets changed   {} (the others: documented)", l.join(", "));
        }
        println!("whole wave        {:.1} s from the first post to the last run's end", self.wave_s);
        println!(
            "{:<12} {:>9} {:>6} {:>18} {:>10} {:>11} {:>8}",
            "vendor", "requests", "429s", "last gone (wave)", "alone", "wave/alone", "<= 1.2x"
        );
        for v in &self.vendors {
            let w = &self.wave[*v];
            let name = if w.handed_over { format!("{v}*") } else { v.to_string() };
            match self.alone.get(*v) {
                // A vendor alone that was done at once (no time to compare with) has no ratio.
                Some(a) if a.last_gone_s > 0.0 => {
                    let ratio = w.last_gone_s / a.last_gone_s;
                    println!(
                        "{:<12} {:>9} {:>6} {:>16.1} s {:>8.1} s {:>10.2}x {:>8}",
                        name,
                        w.requests,
                        w.rate_limited,
                        w.last_gone_s,
                        a.last_gone_s,
                        ratio,
                        if ratio <= 1.2 { "met" } else { "MISSED" }
                    );
                }
                Some(a) => println!(
                    "{:<12} {:>9} {:>6} {:>16.1} s {:>8.1} s {:>11} {:>8}",
                    name, w.requests, w.rate_limited, w.last_gone_s, a.last_gone_s, "-", "-"
                ),
                None => println!("{:<12} {:>9} {:>6} {:>16.1} s", name, w.requests, w.rate_limited, w.last_gone_s),
            }
        }
        if self.vendors.iter().any(|v| self.wave[*v].handed_over) {
            println!(
                "* removes nobody (its API publishes no member operation): its leavers end needs_manual_action with a \
person's steps, and its time is until the last of them ended so"
            );
        }
        if self.unexpected > 0 {
            println!("WARNING           {} runs did not end as their vendor's should", self.unexpected);
        }
    }
}

/// The stack options that apply `limits` in the worker (vendors with a client-side budget).
fn with_limits(mut opts: StackOptions, limits: &[Limit]) -> StackOptions {
    for l in limits.iter().filter(|l| lifecycle_e2e::lanes::has_rate_limit(l.vendor.as_str())) {
        let upper = l.vendor.as_str().to_uppercase();
        opts = opts
            .env(&format!("LIFECYCLE_VENDORS__{upper}__RATE_LIMIT__REQUESTS"), &l.requests.to_string())
            .env(&format!("LIFECYCLE_VENDORS__{upper}__RATE_LIMIT__PER"), &format!("{}ms", l.window_ms));
    }
    opts
}

/// One wave of `people` leavers at `vendors` on a fresh stack; per vendor, when its last account went.
async fn leaver_wave(
    people: usize,
    vendors: &[&str],
    limits: &[Limit],
) -> anyhow::Result<(std::collections::BTreeMap<String, VendorWave>, f64, usize)> {
    use lifecycle_e2e::lanes::{
        end_state, gone_action, mutation_times, now_ms, unexpected_ends, wave_leaver, wave_seed,
    };
    let opts = with_limits(StackOptions::new(Backend::Sqlite, "bench-layoff").env("RUST_LOG", "warn"), limits);
    let stack = Stack::start(opts).await;
    // GitHub's simulator keeps GitHub's own limits (per hour, and writes per minute), which have
    // no request window to set: there a --limit is the worker's budget only.
    for l in limits.iter().filter(|l| l.vendor != VendorKind::Github) {
        stack
            .sim_config(json!({ l.vendor.as_str(): {"rate_limit": {"requests": l.requests, "window_ms": l.window_ms}}}))
            .await;
    }
    stack.sim_seed(wave_seed(people, vendors)).await;
    let events: Vec<Value> = (0..people).map(|i| wave_leaver(i, vendors)).collect();
    eprintln!("layoff: {people} leavers at {}", vendors.join(" + "));
    let started_ms = now_ms();
    let started = Instant::now();
    post_all(&stack, events, 32).await?;
    let runs = stack.wait_all(Duration::from_secs(6 * 3600)).await;
    let wave_s = started.elapsed().as_secs_f64();
    let state = stack.sim_state().await;
    let mut out = std::collections::BTreeMap::new();
    for v in vendors {
        let done: Vec<i64> = match gone_action(v) {
            Some(action) => {
                let gone = mutation_times(&state, v, action);
                anyhow::ensure!(gone.len() == people, "{v}: {} of {people} accounts gone", gone.len());
                gone
            }
            // CircleCI stays in the wave (its lane is one of those sharing the worker), but no
            // account ever goes: what marks its leaver done is the run's end, a person's task
            // (needs_manual_action). Its log must show no mutation.
            None => {
                let mutations = lifecycle_e2e::sim::list(&state, v, "log").len();
                anyhow::ensure!(mutations == 0, "{v}: {mutations} mutations, where lifecycle changes nothing");
                let mut ended: Vec<i64> = runs
                    .iter()
                    .filter(|r| r.vendor.as_str() == *v && r.state == end_state(v))
                    .filter_map(|r| r.finished_at.map(|f| f.timestamp_millis()))
                    .collect();
                ended.sort_unstable();
                anyhow::ensure!(
                    ended.len() == people,
                    "{v}: {} of {people} leavers ended {}",
                    ended.len(),
                    end_state(v)
                );
                ended
            }
        };
        out.insert(
            v.to_string(),
            VendorWave {
                last_gone_s: (done.last().copied().unwrap_or(started_ms) - started_ms) as f64 / 1000.0,
                handed_over: gone_action(v).is_none(),
                requests: state[v]["counters"]["requests"].as_u64().unwrap_or(0),
                rate_limited: state[v]["counters"]["rate_limited"].as_u64().unwrap_or(0),
            },
        );
    }
    Ok((out, wave_s, unexpected_ends(&runs).len()))
}

pub async fn layoff(args: &LayoffArgs) -> anyhow::Result<Layoff> {
    let vendors = vendor_list(&args.vendors)?;
    let (wave, wave_s, mut unexpected) = leaver_wave(args.people, &vendors, &args.limits).await?;
    let mut alone = std::collections::BTreeMap::new();
    if !args.no_alone {
        for v in &vendors {
            let (one, _, bad) = leaver_wave(args.people, &[*v], &args.limits).await?;
            unexpected += bad;
            alone.extend(one);
        }
    }
    Ok(Layoff { people: args.people, vendors, limits: args.limits.clone(), wave, alone, wave_s, unexpected })
}
