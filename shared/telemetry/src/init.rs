use std::sync::OnceLock;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;

/// Flushes pending spans when dropped; keep it alive for the life of the process.
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl TelemetryGuard {
    /// Exports the spans ended so far (tests that read what a collector received).
    pub fn flush(&self) {
        // As at exit: the exporter logs its own errors.
        let _ = self.provider.force_flush();
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        // Nothing useful can be done with a flush error at exit; the exporter logs its own.
        let _ = self.provider.shutdown();
    }
}

/// Initialises JSON logs on stderr (filtered by `RUST_LOG`, default `info,sqlx=warn`), W3C trace-context
/// propagation, and span export over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set
/// (protobuf, or JSON with `OTEL_EXPORTER_OTLP_PROTOCOL=http/json`).
/// Spans are always created, so trace ids propagate through HTTP and Kafka even without export.
pub fn init(service_name: &'static str) -> anyhow::Result<TelemetryGuard> {
    let provider = tracer_provider(service_name)?;
    let tracer = provider.tracer(service_name);
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider.clone());
    // The log filter applies to logs only: spans are always recorded at INFO for OpenTelemetry,
    // so that trace context propagates whatever RUST_LOG says.
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_writer(std::io::stderr)
                .flatten_event(true)
                .with_current_span(true)
                .with_span_list(false)
                .with_filter(log_filter("info,sqlx=warn")),
        )
        .with(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(LevelFilter::INFO),
        )
        .try_init()?;
    Ok(TelemetryGuard { provider })
}

fn tracer_provider(service_name: &'static str) -> anyhow::Result<SdkTracerProvider> {
    let resource = Resource::builder().with_service_name(service_name).build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some_and(|v| !v.is_empty()) {
        // `OTEL_EXPORTER_OTLP_PROTOCOL=http/json` sends OTLP/JSON; the default is protobuf.
        let protocol = match std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL").as_deref() {
            Ok("http/json") => opentelemetry_otlp::Protocol::HttpJson,
            _ => opentelemetry_otlp::Protocol::HttpBinary,
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .build()?;
        builder = builder.with_batch_exporter(exporter);
    }
    Ok(builder.build())
}

/// For test binaries that start several parts in one process: installs propagation and a
/// tracer (no export) once, and compact human-readable logs filtered by `RUST_LOG` (default
/// `warn`). Safe to call from every test.
pub fn init_for_tests() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let provider = SdkTracerProvider::builder().build();
        let tracer = provider.tracer("crm-tests");
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        opentelemetry::global::set_tracer_provider(provider);
        let _ = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_test_writer()
                    .with_filter(log_filter("warn")),
            )
            .with(
                tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_filter(LevelFilter::INFO),
            )
            .try_init();
    });
}

fn log_filter(default: &str) -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default))
}
