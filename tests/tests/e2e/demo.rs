//! `scripts/demo` stops everything it starts.
//!
//! It once started the simulator, the producer and the worker in `$(...)`
//! subshells, so its cleanup had no pids to stop and all three outlived it.
//! This runs the script (a copy, so its `.demo/` work directory is a
//! temporary one, with the binaries already built) under a marker in its
//! environment, which every process it starts inherits; watches `/proc` for
//! the `lifecycle-*` processes that carry the marker while it runs; and then
//! asserts that none of them, nor any other carrying the marker, is left.
//! Linux only (it reads `/proc`); it needs RabbitMQ, like the demo.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The demo waits up to 120 s for its runs; it usually takes well under a minute.
const DEMO_TIMEOUT: Duration = Duration::from_secs(240);
/// How long the demo may take to stop once it has printed its last line.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Time for the kernel to reap what the demo's cleanup killed.
const GRACE: Duration = Duration::from_secs(5);

/// A process seen carrying the marker: its name, and its start time (which
/// tells it apart from a later process that reuses the pid).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    name: String,
    started: u64,
}

/// Every live process whose environment holds `marker`, by pid. Processes
/// that vanish or cannot be read while we look are skipped; zombies (dead,
/// not yet reaped) do not count as alive.
fn marked(marker: &[u8]) -> BTreeMap<u32, Seen> {
    let mut out = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return out };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) else { continue };
        if !env.split(|b| *b == 0).any(|var| var == marker) {
            continue;
        }
        if let Some(seen) = stat(pid) {
            out.insert(pid, seen);
        }
    }
    out
}

/// Name and start time from `/proc/<pid>/stat`; None when gone or a zombie.
fn stat(pid: u32) -> Option<Seen> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
    let (head, rest) = text.rsplit_once(") ")?;
    let name = head.split_once(" (")?.1.to_string();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    // Field 22 of stat (starttime) is the 20th after `state`'s position 3.
    let started = fields.get(19)?.parse().ok()?;
    Some(Seen { name, started })
}

fn bin_dir() -> PathBuf {
    match std::env::var_os("LIFECYCLE_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug"),
    }
}

#[test]
fn the_demo_leaves_no_process_running() {
    let bin = bin_dir();
    for b in ["lifecycle-vendor-sim", "lifecycle-producer", "lifecycle-worker", "lifecycle-ctl"] {
        assert!(
            bin.join(b).exists(),
            "{} is not built: run `cargo build --workspace --bins` first",
            bin.join(b).display()
        );
    }
    // The scripts, copied: the demo works in `<its repo>/.demo`, which is here a temporary directory.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("scripts")).unwrap();
    for script in ["demo", "services"] {
        std::fs::copy(repo.join("scripts").join(script), root.path().join("scripts").join(script)).unwrap();
    }
    let marker_var = "LIFECYCLE_DEMO_TEST_MARKER";
    let marker_value = format!("{}-{}", std::process::id(), uuid::Uuid::new_v4());
    let marker = format!("{marker_var}={marker_value}").into_bytes();
    let log = root.path().join("demo-output.log");

    let mut demo = Command::new("bash");
    demo.arg(root.path().join("scripts/demo"))
        .env("LIFECYCLE_BIN_DIR", &bin)
        .env(marker_var, &marker_value)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::from(std::fs::File::options().append(true).open(&log).unwrap()));
    // Its own process group, so that a demo that hangs can be stopped whole.
    std::os::unix::process::CommandExt::process_group(&mut demo, 0);
    let mut child = demo.spawn().expect("bash runs the demo");
    let group = child.id();

    let started = Instant::now();
    let mut done_at: Option<Instant> = None;
    // Keyed by pid and start time, with the last name seen: a child sampled
    // between fork and exec still carries its parent's name (`bash`), and
    // keeping that first name once hid the producer from this test.
    let mut seen: BTreeMap<(u32, u64), Seen> = BTreeMap::new();
    let status = loop {
        for (pid, s) in marked(&marker) {
            seen.insert((pid, s.started), s);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        // A cleanup that waits for processes it did not stop never returns.
        if done_at.is_none() && std::fs::read_to_string(&log).unwrap_or_default().contains("== Done.") {
            done_at = Some(Instant::now());
        }
        if started.elapsed() > DEMO_TIMEOUT || done_at.is_some_and(|t| t.elapsed() > STOP_TIMEOUT) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = std::fs::read_to_string(&log).unwrap_or_default();
    let lifecycle: Vec<(u32, Seen)> =
        seen.iter().filter(|(_, s)| s.name.starts_with("lifecycle-")).map(|((pid, _), s)| (*pid, s.clone())).collect();

    if status.is_none() {
        // Stop the script itself (not what it started: that is what we look for next).
        let _ = child.kill();
        let _ = child.wait();
    }
    // What still runs after a grace period: every marked process that is not
    // the broker (scripts/services may have had to start RabbitMQ, which is
    // meant to keep running), and every lifecycle process seen, if still the same.
    let deadline = Instant::now() + GRACE;
    let survivors = loop {
        let mut left: BTreeMap<u32, Seen> = marked(&marker)
            .into_iter()
            .filter(|(_, s)| {
                !["beam.smp", "epmd", "erl_child_setup", "inet_gethost", "heart"].contains(&s.name.as_str())
            })
            .collect();
        for (pid, s) in &lifecycle {
            if stat(*pid).as_ref() == Some(s) {
                left.insert(*pid, s.clone());
            }
        }
        if left.is_empty() || Instant::now() > deadline {
            break left;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    // Never leave them behind, whatever the verdict: these pids are ours (they carry our marker).
    for pid in survivors.keys() {
        let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
    }
    if status.is_none() {
        let _ = Command::new("kill").arg("-9").arg(format!("-{group}")).status();
    }

    let status = status.unwrap_or_else(|| match done_at {
        Some(_) => panic!(
            "the demo did not stop within {STOP_TIMEOUT:?} of its end (a cleanup waiting for what it did not stop?); still running then: {survivors:?}\noutput:\n{output}"
        ),
        None => panic!("the demo did not finish within {DEMO_TIMEOUT:?}; its output:\n{output}"),
    });
    assert!(status.success(), "the demo failed ({status}); its output:\n{output}");
    assert!(output.contains("Done."), "the demo did not reach its end; its output:\n{output}");
    let names: Vec<&str> = lifecycle.iter().map(|(_, s)| s.name.as_str()).collect();
    // `comm` holds at most 15 bytes: lifecycle-vendo(r-sim), lifecycle-produ(cer), lifecycle-worke(r).
    for started in ["lifecycle-vendo", "lifecycle-produ", "lifecycle-worke"] {
        assert!(names.contains(&started), "{started}* was never seen running (seen: {names:?}); output:\n{output}");
    }
    assert!(
        survivors.is_empty(),
        "processes the demo started outlived it (now killed): {survivors:?}\nseen during the run: {lifecycle:?}\noutput:\n{output}"
    );
}
