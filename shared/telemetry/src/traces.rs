//! Traces: OpenTelemetry over OTLP/HTTP (protobuf), fed by our `tracing` spans.
//!
//! Off unless an endpoint is configured: `[telemetry] otlp_endpoint =
//! "http://collector:4318"` (or `LIFECYCLE_TELEMETRY__OTLP_ENDPOINT`), else the
//! standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`.
//! When off, nothing here changes what a process does: the helpers below find
//! no trace context and return `None` or do nothing.
//!
//! Only our own spans (targets `lifecycle_*`, INFO and above) are exported, and
//! no log events: the spans carry what a trace needs (`intake`,
//! `outbox.publish`, `run`, `step`, `vendor.request`), and a log line or a
//! library's span (tower-http's request span holds the full URI, query string
//! included) could carry what must not leave the process.
//!
//! The W3C `traceparent` (`00-<trace id>-<span id>-<flags>`) is how a trace
//! crosses the database and RabbitMQ: the intake stores the context of the span
//! that stored a run with that run, the relay and everything that republishes a
//! run puts it in the message's `traceparent` header, and the worker's `run`
//! span continues it ([`continue_from`]) or, for a replay, links to it
//! ([`link_to`]).

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub use lifecycle_config::TelemetrySettings;

/// Where spans go: `Some(None)` when the standard variables name it,
/// `Some(Some(url))` for ours, `None` when traces are off.
pub(crate) fn traces_url(settings: &TelemetrySettings) -> Option<Option<String>> {
    if let Some(base) = settings.otlp_endpoint.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        return Some(Some(format!("{}/v1/traces", base.trim_end_matches('/'))));
    }
    let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
    (set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") || set("OTEL_EXPORTER_OTLP_ENDPOINT")).then_some(None)
}

/// Parses a W3C `traceparent` header value. Version `00` must have exactly
/// four fields; a later version may have more (they are ignored); `ff`, ids of
/// zeros, upper-case or short hex are refused.
pub fn parse_traceparent(value: &str) -> Option<SpanContext> {
    let value = value.trim();
    let mut parts = value.split('-');
    let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex =
        |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hex(version, 2) || version == "ff" || !hex(trace, 32) || !hex(span, 16) || !hex(flags, 2) {
        return None;
    }
    if version == "00" && parts.next().is_some() {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok().filter(|t| *t != TraceId::INVALID)?;
    let span_id = SpanId::from_hex(span).ok().filter(|s| *s != SpanId::INVALID)?;
    let flags = TraceFlags::new(u8::from_str_radix(flags, 16).ok()? & TraceFlags::SAMPLED.to_u8());
    Some(SpanContext::new(trace_id, span_id, flags, true, TraceState::default()))
}

/// A span context as a version-00 `traceparent`.
pub fn format_traceparent(cx: &SpanContext) -> String {
    format!("00-{}-{}-{:02x}", cx.trace_id(), cx.span_id(), cx.trace_flags().to_u8())
}

/// The `traceparent` of the current span, when traces are on and it is one of
/// ours (the code storing or publishing a run runs inside such a span).
pub fn current_traceparent() -> Option<String> {
    traceparent_of(&tracing::Span::current())
}

/// The `traceparent` of `span`, when traces are on and it is exported.
pub fn traceparent_of(span: &tracing::Span) -> Option<String> {
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| format_traceparent(&sc))
}

/// Makes `span` a child of the trace `traceparent` names (a caller's header,
/// a stored context). Without one, or with one that does not parse, `span`
/// keeps its own parent (or starts a trace of its own). Call it before
/// entering `span`. Does nothing when traces are off.
pub fn continue_from(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(sc) = traceparent.and_then(parse_traceparent) {
        let _ = span.set_parent(Context::new().with_remote_span_context(sc));
    }
}

/// Makes `span` the root of a new trace that links to the one `traceparent`
/// names (a replayed run to its original run's trace).
pub fn link_to(span: &tracing::Span, traceparent: Option<&str>) {
    let _ = span.set_parent(Context::new());
    if let Some(sc) = traceparent.and_then(parse_traceparent) {
        span.add_link(sc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_traceparent_reads_and_writes_back_the_same() {
        let cx = parse_traceparent(EXAMPLE).expect("the W3C example parses");
        assert_eq!(cx.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(cx.span_id().to_string(), "00f067aa0ba902b7");
        assert!(cx.is_sampled() && cx.is_remote());
        assert_eq!(format_traceparent(&cx), EXAMPLE);
        let unsampled = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert!(!unsampled.is_sampled());
        assert!(format_traceparent(&unsampled).ends_with("-00"));
    }

    #[test]
    fn a_malformed_traceparent_is_refused() {
        for bad in [
            "",
            "00",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "0x-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad:?} was accepted");
        }
        // A later version may carry more fields; the first four are read.
        assert!(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later").is_some());
    }

    #[test]
    fn without_traces_on_there_is_no_context_to_store_or_continue() {
        let span = tracing::info_span!("intake");
        continue_from(&span, Some(EXAMPLE));
        assert_eq!(traceparent_of(&span), None);
        assert_eq!(current_traceparent(), None);
    }

    #[test]
    fn our_endpoint_gets_the_traces_path() {
        let s = TelemetrySettings { otlp_endpoint: Some("http://collector:4318/".into()) };
        assert_eq!(traces_url(&s), Some(Some("http://collector:4318/v1/traces".into())));
    }
}
