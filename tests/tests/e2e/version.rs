//! Every binary names its version and commit, and a running system says the
//! same in its admin API, its console and its metrics (issue 30): what an
//! operator compares before and after an upgrade.

use lifecycle_e2e::process::bin;
use lifecycle_e2e::stack::{ADMIN_PASSWORD, ADMIN_USER};
use lifecycle_e2e::{Backend, Stack, StackOptions};
use serde_json::Value;

const BINARIES: [&str; 5] =
    ["lifecycle-producer", "lifecycle-worker", "lifecycle-ctl", "lifecycle-vendor-sim", "lifecycle-bench"];

/// `NAME 1.0.0 (commit 1a2b3c4d5e6f, 2026-12-08)` (the date only when known)
/// into the version, the commit and the date.
fn parse_version(name: &str, line: &str) -> (String, String, Option<String>) {
    let rest = line.strip_prefix(&format!("{name} ")).unwrap_or_else(|| panic!("{line:?} names {name}"));
    let (version, rest) = rest.split_once(" (commit ").unwrap_or_else(|| panic!("{line:?} names a commit"));
    let inside = rest.strip_suffix(')').unwrap_or_else(|| panic!("{line:?} ends with ')'"));
    let (commit, date) = match inside.split_once(", ") {
        Some((c, d)) => (c, Some(d.to_string())),
        None => (inside, None),
    };
    assert!(
        commit == "unknown" || (commit.len() == 12 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "{line:?}: the commit is twelve hex digits or `unknown`"
    );
    if let Some(d) = &date {
        assert!(d.len() == 10 && d.as_bytes()[4] == b'-' && d.as_bytes()[7] == b'-', "{line:?}: YYYY-MM-DD");
    }
    (version.to_string(), commit.to_string(), date)
}

fn version_of(name: &str, flag: &str) -> String {
    let out = std::process::Command::new(bin(name)).arg(flag).output().unwrap();
    assert!(out.status.success(), "{name} {flag}: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn every_binary_names_the_workspace_version_and_one_commit() {
    let mut seen = Vec::new();
    for name in BINARIES {
        let line = version_of(name, "--version");
        assert_eq!(version_of(name, "-V"), line, "{name}: -V and --version agree");
        let parsed = parse_version(name, &line);
        assert_eq!(parsed.0, env!("CARGO_PKG_VERSION"), "{line:?}: the workspace's version");
        seen.push(parsed);
    }
    seen.dedup();
    assert_eq!(seen.len(), 1, "every binary is built from one commit: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_the_console_and_both_metrics_report_the_binaries_build() {
    let (version, commit, date) = parse_version("lifecycle-producer", &version_of("lifecycle-producer", "--version"));
    let stack = Stack::start(StackOptions::new(Backend::Sqlite, "version")).await;
    let admin = |path: &str| {
        stack.http.get(format!("{}{path}", stack.admin_url)).basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD)).send()
    };

    let api: Value = admin("/api/v1/version").await.unwrap().json().await.unwrap();
    assert_eq!(api, serde_json::json!({"version": version, "commit": commit, "built": date}));

    let page = admin("/").await.unwrap().text().await.unwrap();
    assert!(page.contains(&format!("<footer>lifecycle {version} · commit {commit}")), "{page}");

    let sample = format!(r#"lifecycle_build_info{{version="{version}",commit="{commit}"}} 1"#);
    let worker_metrics = super::alerts::worker_metrics_url(&stack);
    for url in [format!("{}/metrics", stack.producer_url), worker_metrics] {
        let text = stack.http.get(&url).send().await.unwrap().text().await.unwrap();
        assert!(text.lines().any(|l| l == sample), "{url} has {sample}:\n{text}");
    }
}
