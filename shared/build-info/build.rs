//! Finds the commit the build is made from.
//!
//! `LIFECYCLE_COMMIT` (and `LIFECYCLE_COMMIT_DATE`, `YYYY-MM-DD`) win: a
//! build without `.git` (a source tarball, a container build whose context
//! leaves `.git` out) passes them. Else `git` is asked. Else the commit is
//! `unknown`: the build never fails for want of git.
//!
//! Hand-written (some fifty lines) rather than vergen-gitcl: the vergen-gitcl
//! release that builds with our toolchain (1.0) watches the branch's ref under
//! the worktree's own git directory, where a `git worktree` (how this
//! repository is worked on) has none, so a new commit would not rerun it and
//! the binaries would name a stale commit; it also brings derive_builder, time
//! and anyhow into the build. `built` reads git through libgit2 (a C build).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=LIFECYCLE_COMMIT");
    println!("cargo::rerun-if-env-changed=LIFECYCLE_COMMIT_DATE");
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));

    let (commit, date) = match std::env::var("LIFECYCLE_COMMIT") {
        Ok(c) if !c.trim().is_empty() => {
            let date = std::env::var("LIFECYCLE_COMMIT_DATE").ok().filter(|d| !d.trim().is_empty());
            (normalize(c.trim()), date.and_then(|d| checked_date(d.trim())))
        }
        _ => from_git(&dir).unwrap_or_else(|| ("unknown".into(), None)),
    };
    let version = std::env::var("CARGO_PKG_VERSION").expect("cargo sets CARGO_PKG_VERSION");
    let long = match &date {
        Some(d) => format!("{version} (commit {commit}, {d})"),
        None => format!("{version} (commit {commit})"),
    };
    println!("cargo::rustc-env=LIFECYCLE_BUILD_COMMIT={commit}");
    println!("cargo::rustc-env=LIFECYCLE_BUILD_DATE={}", date.unwrap_or_default());
    println!("cargo::rustc-env=LIFECYCLE_BUILD_LONG_VERSION={long}");
}

/// Twelve hex digits, as git abbreviates; anything that could not be a
/// Prometheus label value or a word on a line becomes `unknown`.
fn normalize(commit: &str) -> String {
    if commit.chars().all(|c| c.is_ascii_hexdigit()) {
        return commit[..commit.len().min(12)].to_ascii_lowercase();
    }
    if commit.len() <= 64 && commit.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) {
        return commit.to_string();
    }
    println!("cargo::warning=LIFECYCLE_COMMIT is not a commit name ({commit:?}); the build says `unknown`");
    "unknown".into()
}

fn checked_date(d: &str) -> Option<String> {
    let b = d.as_bytes();
    let shape = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| if i == 4 || i == 7 { *c == b'-' } else { c.is_ascii_digit() });
    if !shape {
        println!("cargo::warning=LIFECYCLE_COMMIT_DATE is not YYYY-MM-DD ({d:?}); the build names no date");
    }
    shape.then(|| d.to_string())
}

/// The commit and its date (UTC) from git, when this crate is in a git
/// checkout of this workspace (not in some other repository around a
/// tarball's sources). Registers what changes on a commit, checkout or amend.
fn from_git(dir: &Path) -> Option<(String, Option<String>)> {
    let root = dir.join("../..").canonicalize().ok()?;
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    if Path::new(&top).canonicalize().ok()? != root {
        return None;
    }
    let sha = git(dir, &["rev-parse", "--verify", "HEAD"])?;
    let date = git(dir, &["log", "-1", "--format=%cd", "--date=format-local:%Y-%m-%d", "HEAD"]);

    // HEAD (a checkout, a detached commit), the branch's ref (a commit; a
    // worktree keeps it in the common git directory, which --git-path
    // resolves), else the folder it will be written in (a ref packed by gc
    // comes back as a file there), and packed-refs.
    let path = |args: &[&str]| git(dir, args).map(|p| dir.join(p));
    let mut watch: Vec<PathBuf> = Vec::new();
    watch.extend(path(&["rev-parse", "--git-path", "HEAD"]));
    if let Some(branch) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        if let Some(p) = path(&["rev-parse", "--git-path", &branch]) {
            watch.extend(if p.exists() { Some(p) } else { p.parent().map(Path::to_path_buf) });
        }
    }
    watch.extend(path(&["rev-parse", "--git-path", "packed-refs"]));
    for p in watch {
        // A path that does not exist would rerun this script on every build.
        if p.exists() {
            println!("cargo::rerun-if-changed={}", p.display());
        }
    }
    Some((normalize(&sha), date))
}

/// One line of git's output; `None` when git is missing or says no.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).current_dir(dir).env("TZ", "UTC").output().ok()?;
    let line = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !line.is_empty()).then_some(line)
}
