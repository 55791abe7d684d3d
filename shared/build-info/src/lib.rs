//! What this build is: the workspace's version and the commit it was made
//! from, found by `build.rs` (git, else `LIFECYCLE_COMMIT`, else `unknown`).
//!
//! Only the binaries depend on this crate, and a new commit rebuilds it: the
//! libraries take these values at run time as `lifecycle_telemetry::BuildInfo`
//! (see each binary's `main.rs`), so that a commit recompiles none of them.

/// The workspace's semantic version (CHANGELOG.md says what a change of each part means).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit, abbreviated to twelve hex digits as git does, or `unknown`.
pub const COMMIT: &str = env!("LIFECYCLE_BUILD_COMMIT");

/// The commit's date (`YYYY-MM-DD`, UTC), when known.
pub const DATE: Option<&str> =
    if env!("LIFECYCLE_BUILD_DATE").is_empty() { None } else { Some(env!("LIFECYCLE_BUILD_DATE")) };

/// What `--version` prints after the binary's name:
/// `1.0.0 (commit 1a2b3c4d5e6f, 2026-12-08)`.
pub const LONG_VERSION: &str = env!("LIFECYCLE_BUILD_LONG_VERSION");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_long_version_names_the_version_the_commit_and_the_date() {
        assert!(LONG_VERSION.starts_with(&format!("{VERSION} (commit {COMMIT}")), "{LONG_VERSION}");
        assert_eq!(DATE.is_some(), LONG_VERSION.ends_with(&format!(", {})", DATE.unwrap_or_default())));
        assert!(!COMMIT.is_empty() && !COMMIT.contains(char::is_whitespace));
    }
}
