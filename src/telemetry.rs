//! Traces over OTLP (`otlp_endpoint`, off by default): the `tracing`
//! spans of a request — `request` at the edge, `command` around every
//! entity call, `journal_commit` from an append's submission until it is
//! durable, `forward` around a command sent to another node and
//! `forwarded` where that node serves it — exported as OpenTelemetry
//! spans (OTLP/HTTP, protobuf) to `{otlp_endpoint}/v1/traces`. The trace
//! context crosses the inter-node channel as a W3C `traceparent`, so a
//! forwarded claim is one trace over both nodes.

use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use opentelemetry_sdk::Resource;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The tracer provider exporting to `endpoint` (e.g. `http://collector:4318`),
/// spans named by `service.instance.id = node`, a share `ratio` of new
/// traces kept (a trace continued from another node follows its parent's
/// choice).
pub fn provider(endpoint: &str, node: &str, ratio: f64) -> Result<SdkTracerProvider, String> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .build()
        .map_err(|e| format!("otlp_endpoint: {e}"))?;
    let resource = Resource::builder()
        .with_service_name("surge")
        .with_attribute(KeyValue::new("service.instance.id", node.to_owned()))
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            ratio.clamp(0.0, 1.0),
        ))))
        .with_resource(resource)
        .build())
}

/// The current span's trace context as a W3C `traceparent`, when it is
/// traced (no exporter, no header).
pub fn traceparent() -> Option<String> {
    let span = tracing::Span::current();
    // Without an exporter the forward span is off: no context to carry,
    // and no map built on every forwarded command.
    if span.is_disabled() {
        return None;
    }
    let cx = span.context();
    let mut carrier: HashMap<String, String> = HashMap::new();
    TraceContextPropagator::new().inject_context(&cx, &mut carrier);
    carrier.remove("traceparent")
}

/// Makes `span` a child of the remote span `traceparent` names.
pub fn continue_trace(span: &tracing::Span, traceparent: &str) {
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    let _ = span.set_parent(cx);
}
