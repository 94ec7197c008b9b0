//! Traces: one server span per MCP request and a client span for its upstream leg, named and
//! attributed per the OpenTelemetry semantic conventions for MCP, exported over OTLP/HTTP
//! (protobuf). Off unless configured ([`TraceSettings::from_env`]).
//!
//! Why a span processor of our own ([`Queue`]) rather than the SDK's batch processor: the
//! exporter must never slow traffic down, and an operator must see when spans are lost. Ending a
//! span here is one push under a lock on a bounded buffer; a full buffer (collector down or
//! slow) drops the span and counts it, and the counts are exported as metrics. One thread of its
//! own builds the exporter (its blocking HTTP client must live outside the async runtime), and is
//! woken only for a full batch or by its timer (a wake-up per span cost two context switches per
//! span: the first version's 21 µs per traced call, measured).

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use mesh_core::audit::Outcome;
use mesh_core::trace::{CallSpan, ClientStart, End, ServerStart};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanData, SpanExporter as _, SpanProcessor};
use opentelemetry_sdk::Resource;

/// Attribute names (semantic conventions for MCP and GenAI, and the mesh's own).
mod attr {
    pub const METHOD: &str = "mcp.method.name";
    pub const PROTOCOL_VERSION: &str = "mcp.protocol.version";
    pub const SESSION_ID: &str = "mcp.session.id";
    pub const RESOURCE_URI: &str = "mcp.resource.uri";
    pub const TOOL_NAME: &str = "gen_ai.tool.name";
    pub const PROMPT_NAME: &str = "gen_ai.prompt.name";
    pub const OPERATION: &str = "gen_ai.operation.name";
    pub const REQUEST_ID: &str = "jsonrpc.request.id";
    pub const ERROR_TYPE: &str = "error.type";
    pub const OUTCOME: &str = "mesh.outcome";
    pub const TRANSPORT: &str = "network.transport";
    pub const NETWORK_PROTOCOL: &str = "network.protocol.name";
    pub const ORG: &str = "mesh.org.id";
    pub const USER: &str = "mesh.user.id";
    pub const KEY: &str = "mesh.key.id";
    pub const ROUTE_KIND: &str = "mesh.route.kind";
    pub const ROUTE: &str = "mesh.route";
    pub const CONNECTION: &str = "mesh.connection";
}

/// How traces are exported; `None` from [`TraceSettings::from_env`] means off.
#[derive(Debug, Clone)]
pub struct TraceSettings {
    /// The OTLP/HTTP traces URL (`…/v1/traces`); `None` lets the exporter read
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT` itself.
    pub endpoint: Option<String>,
    /// Spans waiting to be exported before new ones are dropped (`OTEL_BSP_MAX_QUEUE_SIZE`, 2048).
    pub queue: usize,
    /// Most spans per export (`OTEL_BSP_MAX_EXPORT_BATCH_SIZE`, 512).
    pub batch: usize,
    /// Longest a span waits for its batch (`OTEL_BSP_SCHEDULE_DELAY`, 5000 ms).
    pub delay: Duration,
    /// `service.name` when `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` name none.
    pub service_name: String,
}

impl TraceSettings {
    /// The standard `OTEL_*` variables: on when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` is set, unless `OTEL_SDK_DISABLED=true` or
    /// `OTEL_TRACES_EXPORTER=none`. Only OTLP over HTTP/protobuf is built in: another
    /// `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL` or `OTEL_TRACES_EXPORTER` is an error.
    pub fn from_env() -> Result<Option<TraceSettings>, String> {
        let var = |k: &str| std::env::var(k).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        match var("OTEL_TRACES_EXPORTER").as_deref() {
            None | Some("otlp") => {}
            Some("none") => return Ok(None),
            Some(other) => return Err(format!("OTEL_TRACES_EXPORTER={other} is not supported: use otlp or none")),
        }
        if var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none() && var("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() {
            return Ok(None);
        }
        let protocol = var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"));
        if let Some(p) = protocol.filter(|p| p != "http/protobuf") {
            return Err(format!(
                "OTLP protocol {p} is not supported: the mesh exports http/protobuf (a collector's port 4318)"
            ));
        }
        let number = |k: &str, default: u64| -> Result<u64, String> {
            match var(k) {
                None => Ok(default),
                Some(v) => v.parse().map_err(|_| format!("{k} must be a number, not '{v}'")),
            }
        };
        Ok(Some(TraceSettings {
            endpoint: None,
            queue: number("OTEL_BSP_MAX_QUEUE_SIZE", 2048)?.max(1) as usize,
            batch: number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)?.max(1) as usize,
            delay: Duration::from_millis(number("OTEL_BSP_SCHEDULE_DELAY", 5000)?),
            service_name: "mcp-mesh".into(),
        }))
    }

    /// Settings for a collector at `endpoint` (a full traces URL), for tests and embedding.
    pub fn to(endpoint: &str) -> TraceSettings {
        TraceSettings {
            endpoint: Some(endpoint.to_string()),
            queue: 2048,
            batch: 512,
            delay: Duration::from_millis(200),
            service_name: "mcp-mesh".into(),
        }
    }
}

/// Spans exported and dropped so far.
#[derive(Debug, Default)]
struct Counts {
    exported: AtomicU64,
    dropped: AtomicU64,
}

/// The tracer of a running mesh: makes spans and exports them.
pub struct Tracing {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    counts: Arc<Counts>,
}

impl std::fmt::Debug for Tracing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracing").finish_non_exhaustive()
    }
}

impl Tracing {
    /// Starts the export thread and the tracer. The sampler comes from `OTEL_TRACES_SAMPLER`
    /// (default: parent-based, always on), the resource from `OTEL_SERVICE_NAME` and
    /// `OTEL_RESOURCE_ATTRIBUTES`.
    pub fn start(s: &TraceSettings) -> Result<Arc<Tracing>, String> {
        let counts = Arc::new(Counts::default());
        let queue = Queue::start(s, counts.clone())?;
        let mut resource = Resource::builder();
        let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.trim().is_empty())
            || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| v.contains("service.name="));
        if !named {
            resource = resource.with_service_name(s.service_name.clone());
        }
        resource = resource.with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
        let provider = SdkTracerProvider::builder().with_span_processor(queue).with_resource(resource.build()).build();
        let tracer = provider.tracer("mcp-mesh");
        Ok(Arc::new(Tracing { provider, tracer, counts }))
    }

    /// Spans handed to the collector, and spans dropped (queue full, or the export failed).
    pub fn counts(&self) -> (u64, u64) {
        (self.counts.exported.load(Ordering::Relaxed), self.counts.dropped.load(Ordering::Relaxed))
    }

    /// Exports what is queued, then stops the export thread (blocking: call off the runtime).
    pub fn shutdown(&self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!(error = %e, "trace exporter did not shut down cleanly");
        }
    }
}

/// W3C trace context read from a request.
struct Carrier<'a>(mesh_core::trace::Parent<'a>);

impl Extractor for Carrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "traceparent" => Some(self.0.traceparent),
            "tracestate" => self.0.tracestate,
            _ => None,
        }
    }
    fn keys(&self) -> Vec<&str> {
        vec!["traceparent", "tracestate"]
    }
}

/// At most `max` bytes of `s`, cut at a character boundary: a client chooses names and a tool
/// its error text, and neither may make a span (queued, then exported) large.
fn capped(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Longest name, and error text, a span carries (the spec's limit on tool names is 128).
const MAX_NAME: usize = 128;
const MAX_ERROR: usize = 256;

/// `{method} {target}`: the semantic conventions' span name.
fn span_name(method: &str, name: Option<&str>) -> Cow<'static, str> {
    let method = capped(method, MAX_NAME);
    match name.map(|n| capped(n, MAX_NAME)) {
        Some(n) if matches!(method, "tools/call" | "prompts/get") => Cow::Owned(format!("{method} {n}")),
        _ => Cow::Owned(method.to_string()),
    }
}

/// The attributes naming what a request addresses.
fn target_attributes(method: &str, name: Option<&str>, out: &mut Vec<KeyValue>) {
    let (method, name) = (capped(method, MAX_NAME), name.map(|n| capped(n, MAX_NAME)));
    out.push(KeyValue::new(attr::METHOD, method.to_string()));
    match (method, name) {
        ("tools/call", Some(n)) => {
            out.push(KeyValue::new(attr::TOOL_NAME, n.to_string()));
            out.push(KeyValue::new(attr::OPERATION, "execute_tool"));
        }
        ("prompts/get", Some(n)) => out.push(KeyValue::new(attr::PROMPT_NAME, n.to_string())),
        (m, Some(n)) if m.starts_with("resources/") => out.push(KeyValue::new(attr::RESOURCE_URI, n.to_string())),
        _ => {}
    }
}

impl mesh_core::trace::Tracer for Tracing {
    fn server(&self, s: &ServerStart<'_>) -> Option<Box<dyn CallSpan>> {
        let parent = match s.parent {
            Some(p) => TraceContextPropagator::new().extract(&Carrier(p)),
            None => Context::new(),
        };
        let mut attrs = Vec::with_capacity(14);
        target_attributes(s.method, s.name, &mut attrs);
        attrs.push(KeyValue::new(attr::REQUEST_ID, capped(s.request_id.trim_matches('"'), MAX_NAME).to_string()));
        attrs.push(KeyValue::new(attr::PROTOCOL_VERSION, s.protocol_version.to_string()));
        if let Some(id) = s.session_id {
            attrs.push(KeyValue::new(attr::SESSION_ID, id.to_string()));
        }
        attrs.push(KeyValue::new(attr::TRANSPORT, "tcp"));
        attrs.push(KeyValue::new(attr::NETWORK_PROTOCOL, "http"));
        attrs.push(KeyValue::new(attr::ORG, s.org_id.to_string()));
        attrs.push(KeyValue::new(attr::USER, s.user_id.to_string()));
        attrs.push(KeyValue::new(attr::KEY, s.key_id.to_string()));
        attrs.push(KeyValue::new(attr::ROUTE_KIND, s.route_kind.to_string()));
        attrs.push(KeyValue::new(attr::ROUTE, s.route.to_string()));
        let span = self
            .tracer
            .span_builder(span_name(s.method, s.name))
            .with_kind(SpanKind::Server)
            .with_attributes(attrs)
            .start_with_context(&self.tracer, &parent);
        Some(Box::new(Live { cx: parent.with_span(span), tracer: self.tracer.clone() }))
    }

    fn client_of(&self, parent: mesh_core::trace::Parent<'_>, s: &ClientStart<'_>) -> Box<dyn CallSpan> {
        let cx = TraceContextPropagator::new().extract(&Carrier(parent));
        Live { cx, tracer: self.tracer.clone() }.client(s)
    }
}

/// A span in flight, kept in a context so that children name it as their parent.
struct Live {
    cx: Context,
    tracer: SdkTracer,
}

impl CallSpan for Live {
    fn client(&self, s: &ClientStart<'_>) -> Box<dyn CallSpan> {
        let mut attrs = Vec::with_capacity(6);
        target_attributes(s.method, s.name, &mut attrs);
        attrs.push(KeyValue::new(attr::TRANSPORT, s.transport));
        attrs.push(KeyValue::new(attr::CONNECTION, s.connection.to_string()));
        let span = self
            .tracer
            .span_builder(span_name(s.method, s.name))
            .with_kind(SpanKind::Client)
            .with_attributes(attrs)
            .start_with_context(&self.tracer, &self.cx);
        Box::new(Live { cx: self.cx.with_span(span), tracer: self.tracer.clone() })
    }

    fn traceparent(&self) -> String {
        let sc = self.cx.span().span_context().clone();
        format!("00-{}-{}-{:02x}", sc.trace_id(), sc.span_id(), sc.trace_flags().to_u8())
    }

    fn tracestate(&self) -> Option<String> {
        let state = self.cx.span().span_context().trace_state().header();
        (!state.is_empty()).then_some(state)
    }

    fn end(self: Box<Self>, end: End<'_>) {
        let span = self.cx.span();
        if end.outcome != Outcome::Ok {
            // The semantic conventions: the JSON-RPC code for an error reply, `tool_error` for a
            // tool result with `isError`, else what happened (no reply: cancelled, client gone).
            let error_type = match (end.outcome, end.code) {
                (Outcome::ToolError, _) | (_, None) => Cow::Borrowed(end.outcome.as_str()),
                (_, Some(code)) => Cow::Owned(code.to_string()),
            };
            span.set_attribute(KeyValue::new(attr::ERROR_TYPE, error_type));
            span.set_attribute(KeyValue::new(attr::OUTCOME, end.outcome.as_str()));
            span.set_status(Status::error(capped(end.error.unwrap_or(end.outcome.as_str()), MAX_ERROR).to_string()));
        }
        span.end();
    }
}

/// What the export thread is asked besides exporting.
enum Control {
    Resource(Resource),
    Flush(mpsc::Sender<()>),
    Stop(mpsc::Sender<()>),
}

#[derive(Default)]
struct Buffer {
    spans: Vec<SpanData>,
    control: Vec<Control>,
}

/// The queue shared by the request threads and the export thread. Ending a span takes the lock
/// for one push; the export thread is woken only when a batch is full or someone asks it
/// something, else by its timer: a wake-up per span would cost two context switches per span.
struct Shared {
    buf: Mutex<Buffer>,
    wake: Condvar,
    capacity: usize,
    batch: usize,
    delay: Duration,
    counts: Arc<Counts>,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Buffer> {
        self.buf.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The span processor: a bounded queue in front of an export thread.
struct Queue {
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").finish_non_exhaustive()
    }
}

impl Queue {
    fn start(s: &TraceSettings, counts: Arc<Counts>) -> Result<Queue, String> {
        let shared = Arc::new(Shared {
            buf: Mutex::new(Buffer::default()),
            wake: Condvar::new(),
            capacity: s.queue.max(1),
            // A batch larger than the queue would never fill: export what the queue can hold.
            batch: s.batch.clamp(1, s.queue.max(1)),
            // A zero delay would make the export thread spin on the lock.
            delay: s.delay.max(Duration::from_millis(1)),
            counts,
        });
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let endpoint = s.endpoint.clone();
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name("mesh-trace-export".into())
            .spawn(move || {
                use opentelemetry_otlp::WithExportConfig as _;
                let mut builder = opentelemetry_otlp::SpanExporter::builder().with_http();
                if let Some(e) = endpoint {
                    builder = builder.with_endpoint(e);
                }
                let mut exporter = match builder.build() {
                    Ok(e) => {
                        let _ = ready_tx.send(Ok(()));
                        e
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("cannot build the OTLP exporter: {e}")));
                        return;
                    }
                };
                export_loop(&mut exporter, &sh);
            })
            .map_err(|e| format!("cannot start the trace export thread: {e}"))?;
        ready_rx.recv().map_err(|_| "the trace export thread died".to_string())??;
        Ok(Queue { shared, thread: Mutex::new(Some(thread)) })
    }

    fn ask(&self, make: impl FnOnce(mpsc::Sender<()>) -> Control, timeout: Duration) -> OTelSdkResult {
        let (done, wait) = mpsc::channel();
        self.shared.lock().control.push(make(done));
        self.shared.wake.notify_one();
        wait.recv_timeout(timeout).map_err(|_| OTelSdkError::Timeout(timeout))
    }
}

/// The export thread's side: the exporter and how its exports have gone.
struct Exporting<'a> {
    exporter: &'a mut opentelemetry_otlp::SpanExporter,
    counts: &'a Counts,
    failures: u64,
}

impl Exporting<'_> {
    fn export(&mut self, spans: Vec<SpanData>) {
        if spans.is_empty() {
            return;
        }
        let n = spans.len() as u64;
        match futures_executor::block_on(self.exporter.export(spans)) {
            Ok(()) => {
                self.counts.exported.fetch_add(n, Ordering::Relaxed);
                if self.failures > 0 {
                    tracing::info!(after = self.failures, "trace export works again");
                    self.failures = 0;
                }
            }
            Err(e) => {
                self.counts.dropped.fetch_add(n, Ordering::Relaxed);
                self.failures += 1;
                // Loud once, then every 100th failure: a collector down must not flood the log.
                if self.failures == 1 || self.failures % 100 == 0 {
                    tracing::warn!(error = %e, spans = n, failures = self.failures, "trace export failed; spans dropped");
                }
            }
        }
    }
}

fn export_loop(exporter: &mut opentelemetry_otlp::SpanExporter, sh: &Shared) {
    let mut out = Exporting { exporter, counts: &sh.counts, failures: 0 };
    loop {
        let (mut spans, control) = {
            let guard = sh.lock();
            let (mut guard, _) = sh
                .wake
                .wait_timeout_while(guard, sh.delay, |b| b.spans.len() < sh.batch && b.control.is_empty())
                .unwrap_or_else(|p| p.into_inner());
            (std::mem::take(&mut guard.spans), std::mem::take(&mut guard.control))
        };
        let mut stop = None;
        let mut flushed = Vec::new();
        for c in control {
            match c {
                Control::Resource(r) => out.exporter.set_resource(&r),
                Control::Flush(done) => flushed.push(done),
                Control::Stop(done) => stop = Some(done),
            }
        }
        while spans.len() > sh.batch {
            let rest = spans.split_off(sh.batch);
            out.export(std::mem::replace(&mut spans, rest));
        }
        out.export(spans);
        flushed.into_iter().for_each(|d| {
            let _ = d.send(());
        });
        if let Some(done) = stop {
            let _ = out.exporter.shutdown();
            let _ = done.send(());
            return;
        }
    }
}

impl SpanProcessor for Queue {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        let sh = &self.shared;
        let full = {
            let mut b = sh.lock();
            if b.spans.len() >= sh.capacity {
                true
            } else {
                b.spans.push(span);
                if b.spans.len() == sh.batch {
                    sh.wake.notify_one();
                }
                false
            }
        };
        if full {
            let n = sh.counts.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n == 1 || n % 10_000 == 0 {
                tracing::warn!(dropped = n, "trace queue full (collector down or slow): spans dropped");
            }
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.ask(Control::Flush, Duration::from_secs(30))
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        let r = self.ask(Control::Stop, timeout);
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            if r.is_ok() {
                let _ = t.join();
            }
        }
        r
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.shared.lock().control.push(Control::Resource(resource.clone()));
        self.shared.wake.notify_one();
    }
}

/// The outermost sink when tracing is on: hands out the tracer and passes everything on (to the
/// metrics, then the audit log).
pub struct Traced {
    /// What the spans are made with.
    pub tracing: Arc<Tracing>,
    /// The sink records go on to (metrics, then the audit log).
    pub inner: Arc<dyn mesh_core::audit::AuditSink>,
}

impl mesh_core::audit::AuditSink for Traced {
    fn record(&self, rec: mesh_core::audit::CallRecord) {
        self.inner.record(rec);
    }

    fn session_ended(&self, route_kind: &'static str, lived: Duration) {
        self.inner.session_ended(route_kind, lived);
    }

    fn tracer(&self) -> Option<&dyn mesh_core::trace::Tracer> {
        Some(&*self.tracing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_names_follow_the_semantic_conventions() {
        assert_eq!(span_name("tools/call", Some("get-weather")), "tools/call get-weather");
        assert_eq!(span_name("prompts/get", Some("p")), "prompts/get p");
        assert_eq!(span_name("resources/read", Some("file:///x")), "resources/read");
        assert_eq!(span_name("tools/list", None), "tools/list");
        let long = "é".repeat(100);
        assert_eq!(span_name("tools/call", Some(&long)).len(), "tools/call ".len() + 128);
        assert_eq!(capped("abc", 2), "ab");
    }
}
