//! Logs and metrics, set up the same way by every binary.
//!
//! Logs go to stderr, as text for people or one JSON object per line for log
//! shippers (`[log] format = "json"` / `LIFECYCLE_LOG__FORMAT=json`), filtered
//! by `RUST_LOG` (default `info`). Metrics are recorded with the `metrics`
//! macros anywhere in the code and rendered by [`Metrics::render`] in
//! Prometheus' text format on each service's `/metrics`. Traces, when an
//! endpoint is configured, go to an OpenTelemetry collector ([`traces`]).
//! [`BuildInfo`] is what the binary is (version, commit), as `main` hands it down.

mod build_info;
pub mod traces;

pub use build_info::BuildInfo;
pub use traces::{
    continue_from, current_traceparent, format_traceparent, link_to, parse_traceparent, traceparent_of,
    TelemetrySettings,
};

use lifecycle_config::LogFormat;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
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

/// The tracer of a process that exports traces; flushes what is left when
/// dropped (or at [`Telemetry::shutdown`]).
#[must_use = "dropping it flushes and stops the trace exporter"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Sends the spans still buffered and stops the exporter.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(provider) = self.provider.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("telemetry: could not flush the last spans: {e}");
            }
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Logs as [`init_logging`] sets them up, and, when `settings` (or the
/// standard `OTEL_EXPORTER_OTLP_*` variables) name a collector, traces to it
/// as `service` (`service.name`). Without an endpoint this is
/// [`init_logging`] exactly. A collector that cannot be set up is reported
/// and the process goes on without traces.
pub fn init(format: &LogFormat, service: &str, settings: &TelemetrySettings) -> Telemetry {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{filter::filter_fn, Layer};

    let Some(url) = traces::traces_url(settings) else {
        init_logging(format);
        return Telemetry { provider: None };
    };
    use opentelemetry_otlp::WithExportConfig;
    let mut exporter =
        opentelemetry_otlp::SpanExporter::builder().with_http().with_protocol(opentelemetry_otlp::Protocol::HttpBinary);
    if let Some(url) = url {
        exporter = exporter.with_endpoint(url);
    }
    let exporter = match exporter.build() {
        Ok(e) => e,
        Err(e) => {
            init_logging(format);
            tracing::error!(error = %e, "cannot set up the OTLP trace exporter; running without traces");
            return Telemetry { provider: None };
        }
    };
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(service.to_string()).build();
    let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build();
    let tracer = provider.tracer("lifecycle");

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = fmt::layer().with_writer(std::io::stderr).with_target(true);
    let logs = match format {
        LogFormat::Json => logs.json().flatten_event(true).with_current_span(true).with_span_list(false).boxed(),
        LogFormat::Text => logs.boxed(),
    };
    // Our spans only, no events (see `traces`).
    let ours = filter_fn(|meta| {
        meta.is_span() && meta.target().starts_with("lifecycle") && *meta.level() <= tracing::Level::INFO
    });
    let spans = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_filter(ours);
    let _ = tracing_subscriber::registry().with(logs.with_filter(filter)).with(spans).try_init();
    Telemetry { provider: Some(provider) }
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
