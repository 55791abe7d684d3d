//! `reconcile`: `lifecycle-ctl reconcile` of a large tenant, per vendor, within each vendor's budget.

use anyhow::Context;
use lifecycle_domain::VendorKind;
use lifecycle_e2e::{Backend, Stack, StackOptions};
use serde_json::Value;
use std::time::Instant;

pub struct ReconcileRow {
    pub vendor: &'static str,
    pub accounts: u64,
    pub seconds: f64,
    pub requests: u64,
    pub rate_limited: u64,
}

/// A vendor lifecycle refused to reconcile (its API cannot list accounts): nothing was read.
pub struct Skipped {
    pub vendor: &'static str,
    /// lifecycle's own words (`lifecycle-ctl reconcile`'s error).
    pub reason: String,
    /// Requests the refusal cost at the vendor (0 expected).
    pub requests: u64,
}

pub struct Reconcile {
    pub people: usize,
    pub rows: Vec<ReconcileRow>,
    pub skipped: Vec<Skipped>,
}

impl Reconcile {
    pub(crate) fn print(&self) {
        println!("\n## reconcile: {} people at each vendor, simulator limits on, lifecycle-ctl reconcile", self.people);
        println!("{:<12} {:>9} {:>9} {:>9} {:>6}", "vendor", "accounts", "seconds", "requests", "429s");
        for r in &self.rows {
            println!("{:<12} {:>9} {:>9.1} {:>9} {:>6}", r.vendor, r.accounts, r.seconds, r.requests, r.rate_limited);
        }
        for s in &self.skipped {
            println!("{:<12} skipped, {} requests: {}", s.vendor, s.requests, s.reason);
        }
    }
}

/// The "… is not reconcilable: why" error of a `lifecycle-ctl reconcile` that lifecycle refused,
/// from its JSON (`failed[].error`) or its standard error.
fn not_reconcilable(out: &lifecycle_e2e::ops::CtlOutput) -> Option<String> {
    const REFUSED: &str = " is not reconcilable: ";
    let from_json = serde_json::from_str::<Value>(&out.stdout).ok().and_then(|j| {
        j["failed"]
            .as_array()?
            .iter()
            .find_map(|f| f["error"].as_str().filter(|e| e.contains(REFUSED)).map(str::to_string))
    });
    let error = from_json.or_else(|| out.stderr.lines().find(|l| l.contains(REFUSED)).map(str::to_string))?;
    Some(error[error.find(REFUSED)? + REFUSED.len()..].trim().to_string())
}

pub async fn reconcile(people: usize) -> anyhow::Result<Reconcile> {
    use lifecycle_e2e::lanes::wave_seed;
    let vendors = VendorKind::ALL.map(VendorKind::as_str);
    let stack = Stack::start(StackOptions::new(Backend::Sqlite, "bench-reconcile").env("RUST_LOG", "warn")).await;
    eprintln!("reconcile: seeding {people} people at each vendor");
    stack.sim_seed(wave_seed(people, &vendors)).await;
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for vendor in vendors {
        let before = stack.sim_state().await[vendor]["counters"].clone();
        let started = Instant::now();
        let out = stack.ctl(&["reconcile", "--vendor", vendor, "--json"]).await;
        let seconds = started.elapsed().as_secs_f64();
        let after = stack.sim_state().await[vendor]["counters"].clone();
        let delta = |k: &str| after[k].as_u64().unwrap_or(0).saturating_sub(before[k].as_u64().unwrap_or(0));
        if out.code != 0 {
            // Refused by lifecycle, not failed: nothing to time. Which vendors are is the
            // connector's answer (CircleCI today), not a list kept here.
            let reason =
                not_reconcilable(&out).with_context(|| format!("reconcile of {vendor} failed: {}", out.stderr))?;
            eprintln!("reconcile: {vendor} skipped, lifecycle says it is not reconcilable");
            skipped.push(Skipped { vendor, reason, requests: delta("requests") });
            continue;
        }
        let json = out.json();
        rows.push(ReconcileRow {
            vendor,
            accounts: json["passes"][0]["accounts"].as_u64().unwrap_or(0),
            seconds,
            requests: delta("requests"),
            rate_limited: delta("rate_limited"),
        });
        eprintln!("reconcile: {vendor} done in {seconds:.1} s");
    }
    Ok(Reconcile { people, rows, skipped })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_reconcile_gives_lifecycles_reason() {
        let ctl = |code, stdout: &str, stderr: &str| lifecycle_e2e::ops::CtlOutput {
            code,
            stdout: stdout.into(),
            stderr: stderr.into(),
        };
        let json = r#"{"passes":[],"failed":[{"vendor":"circleci","error":"circleci is not reconcilable: no member list. Review by hand"}]}"#;
        assert_eq!(not_reconcilable(&ctl(1, json, "")).as_deref(), Some("no member list. Review by hand"));
        let stderr = "circleci: circleci is not reconcilable: no member list\n";
        assert_eq!(not_reconcilable(&ctl(1, "", stderr)).as_deref(), Some("no member list"));
        // Any other failure is not a refusal: the benchmark stops on it.
        let failed = r#"{"passes":[],"failed":[{"vendor":"jira","error":"could not read jira's accounts: 503"}]}"#;
        assert_eq!(not_reconcilable(&ctl(1, failed, "jira: could not read jira's accounts: 503")), None);
    }
}
