//! What a running binary is, as the libraries receive it.
//!
//! The values come from `lifecycle-build-info`, which only the binaries
//! depend on (a new commit rebuilds it); each binary's `main` hands them down
//! as a [`BuildInfo`], so a commit recompiles no library.

/// The version and commit a binary was built from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BuildInfo {
    /// The workspace's semantic version.
    pub version: &'static str,
    /// Twelve hex digits of the commit, or `unknown`.
    pub commit: &'static str,
    /// The commit's date (`YYYY-MM-DD`, UTC), when known.
    pub built: Option<&'static str>,
}

impl BuildInfo {
    /// This workspace's version from an unknown commit: for tests, and for a
    /// library used without a binary to say more.
    pub const fn unknown() -> Self {
        Self { version: env!("CARGO_PKG_VERSION"), commit: "unknown", built: None }
    }

    /// Sets `lifecycle_build_info{version, commit} 1`, the usual Prometheus
    /// build-info gauge: `count by (version) (lifecycle_build_info)` shows a
    /// rollout; join on it to label other series with the version.
    pub fn record(&self) {
        metrics::gauge!("lifecycle_build_info", "version" => self.version, "commit" => self.commit).set(1.0);
    }
}

impl Default for BuildInfo {
    fn default() -> Self {
        Self::unknown()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_info_gauge_names_the_version_and_the_commit() {
        let metrics = crate::Metrics::install();
        BuildInfo { version: "1.2.3", commit: "0123456789ab", built: Some("2026-12-08") }.record();
        let text = metrics.render();
        assert!(
            text.lines().any(|l| l == r#"lifecycle_build_info{version="1.2.3",commit="0123456789ab"} 1"#),
            "{text}"
        );
    }
}
