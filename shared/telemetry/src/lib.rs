//! Logs and metrics, set up the same way by every binary.
//!
//! Logs go to stderr, as text for people or one JSON object per line for log
//! shippers (`[log] format = "json"` / `LIFECYCLE_LOG__FORMAT=json`), filtered
//! by `RUST_LOG` (default `info`). Metrics are recorded with the `metrics`
//! macros anywhere in the code and rendered by [`Metrics::render`] in
//! Prometheus' text format on each service's `/metrics`.

use lifecycle_config::LogFormat;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use tracing_subscriber::{fmt, EnvFilter};

/// Installs the global subscriber. Safe to call twice (the second is ignored).
pub fn init_logging(format: &LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(true);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// The process' Prometheus recorder.
#[derive(Clone)]
pub struct Metrics(PrometheusHandle);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

impl Metrics {
    /// Installs the recorder once per process and returns its handle.
    pub fn install() -> Metrics {
        let handle = HANDLE.get_or_init(|| {
            // Latencies from 5 ms to 5 min: vendor calls and whole runs.
            let buckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0];
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &buckets)
                .expect("buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (tests): keep ours working for render().
            let _ = metrics::set_global_recorder(recorder);
            handle
        });
        Metrics(handle.clone())
    }

    pub fn render(&self) -> String {
        self.0.render()
    }
}
