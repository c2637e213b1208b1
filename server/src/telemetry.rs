//! Logging, request ids and metrics. Every request gets an id (the caller's `X-Request-Id` if it is
//! sane, else a fresh one); it is on every log line of that request, in the response header, and in
//! the ledger entries the request writes.

use std::future::{Ready, ready};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing::Instrument;

use crate::config::{AccessLog, LogFormat};
use crate::keys::random_bytes;

/// Sets up the global log subscriber once (later calls are no-ops, as in tests). `RUST_LOG` filters.
/// Lines go to standard error through a writer thread, so a worker never waits for the terminal
/// or a log collector: when the queue is full, lines are dropped and counted
/// (`accord_log_lines_dropped_total`). Call [`flush_logs`] before the process exits.
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,actix_server=warn,actix_web=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(QueuedStderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
}

/// Lines waiting for the writer thread, at most.
const LOG_QUEUE: usize = 16 * 1024;

enum LogMessage {
    Line(Vec<u8>),
    Flush(std::sync::mpsc::SyncSender<()>),
}

fn log_queue() -> &'static std::sync::mpsc::SyncSender<LogMessage> {
    static QUEUE: OnceLock<std::sync::mpsc::SyncSender<LogMessage>> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<LogMessage>(LOG_QUEUE);
        let spawned = std::thread::Builder::new()
            .name("accord-log".into())
            .spawn(move || {
                use std::io::Write;
                // Standard error is locked per line, never held: the process's own messages
                // (eprintln!) must not wait behind the writer.
                for m in rx {
                    match m {
                        LogMessage::Line(l) => {
                            let _ = std::io::stderr().write_all(&l);
                        }
                        LogMessage::Flush(done) => {
                            let _ = std::io::stderr().flush();
                            let _ = done.send(());
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            eprintln!("accord: cannot start the log writer: {e}");
        }
        tx
    })
}

/// Waits (at most a second) until every queued log line is written.
pub fn flush_logs() {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut msg = LogMessage::Flush(tx);
    // The queue may be full while standard error stalls: never wait past the deadline.
    loop {
        match log_queue().try_send(msg) {
            Ok(()) => {
                let _ = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
                return;
            }
            Err(std::sync::mpsc::TrySendError::Full(m)) if Instant::now() < deadline => {
                msg = m;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return,
        }
    }
}

/// The `MakeWriter` behind [`init_logging`]: each event is formatted into a buffer and queued.
struct QueuedStderr;

/// One event's text, queued when the formatter is done with it.
struct QueuedLine(Vec<u8>);

impl std::io::Write for QueuedLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for QueuedLine {
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let line = std::mem::take(&mut self.0);
        if log_queue().try_send(LogMessage::Line(line)).is_err() {
            metrics::counter!("accord_log_lines_dropped_total").increment(1);
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for QueuedStderr {
    type Writer = QueuedLine;

    fn make_writer(&'a self) -> QueuedLine {
        QueuedLine(Vec::with_capacity(256))
    }
}

/// The Prometheus recorder, installed once per process.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let secs = [
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 5.0,
            ];
            let sizes = [
                1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &secs)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_entries".into()), &sizes));
            match builder {
                Ok(b) => {
                    let recorder = b.build_recorder();
                    let handle = recorder.handle();
                    if metrics::set_global_recorder(recorder).is_err() {
                        tracing::warn!("a metrics recorder was already installed");
                    }
                    handle
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics buckets rejected; using defaults");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            }
        })
        .clone()
}

/// The id of the request being handled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl FromRequest for RequestId {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let id = req
            .extensions()
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId(new_request_id()));
        ready(Ok(id))
    }
}

pub const REQUEST_ID_HEADER: &str = "x-request-id";

tokio::task_local! {
    /// The id of the request being handled, for what is built without the request at hand (an
    /// HTML error page).
    static CURRENT_REQUEST_ID: String;
}

/// The id of the request this task is handling, if any.
pub fn current_request_id() -> Option<String> {
    CURRENT_REQUEST_ID.try_with(Clone::clone).ok()
}

pub fn new_request_id() -> String {
    random_bytes::<12>()
        .map(hex::encode)
        .unwrap_or_else(|_| "unknown".into())
}

/// A caller-supplied id is kept only if it is short and plain, so it is safe in logs and entries.
fn sane_request_id(v: &HeaderValue) -> Option<String> {
    let s = v.to_str().ok()?;
    (!s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)))
    .then(|| s.to_string())
}

/// Request id, log span, access log line and HTTP metrics for every request. Logs name the route
/// pattern (`/v1/subjects/{id}/erase`), never the raw path or query, which hold subject ids. The
/// access line is written per `access_log`: never, for errors and slow requests (the default), or
/// for every request.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(sane_request_id)
        .unwrap_or_else(new_request_id);
    req.extensions_mut().insert(RequestId(id.clone()));
    let (access_log, slow) = req
        .app_data::<actix_web::web::Data<crate::state::AppState>>()
        .map_or((AccessLog::Errors, Duration::from_secs(1)), |s| {
            (s.settings.access_log, s.settings.slow_request)
        });
    let method = req.method().clone();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let started = Instant::now();
    let result = CURRENT_REQUEST_ID
        .scope(id.clone(), next.call(req).instrument(span.clone()))
        .await;
    let elapsed = started.elapsed();
    let status = match &result {
        Ok(res) => res.status(),
        Err(e) => e.as_response_error().status_code(),
    };
    metrics::counter!(
        "accord_http_requests_total",
        "route" => route.clone(),
        "method" => method.to_string(),
        "status" => status.as_u16().to_string()
    )
    .increment(1);
    metrics::histogram!("accord_http_request_duration_seconds", "route" => route)
        .record(elapsed.as_secs_f64());
    if access_line(access_log, status.as_u16(), elapsed, slow) {
        span.in_scope(|| {
            tracing::info!(
                target: "accord::access",
                status = status.as_u16(),
                elapsed_us = elapsed.as_micros() as u64,
                "handled"
            )
        });
    }
    let mut res = result?;
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(HeaderName::from_static(REQUEST_ID_HEADER), v);
    }
    Ok(res)
}

/// Whether a request gets an access line.
fn access_line(mode: AccessLog, status: u16, elapsed: Duration, slow: Duration) -> bool {
    match mode {
        AccessLog::Off => false,
        AccessLog::All => true,
        AccessLog::Errors => status >= 400 || elapsed >= slow,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_request_ids_are_kept() {
        assert_eq!(
            sane_request_id(&HeaderValue::from_static("abc-123_x.y:z")),
            Some("abc-123_x.y:z".into())
        );
        assert_eq!(
            sane_request_id(&HeaderValue::from_static("has space")),
            None
        );
        assert_eq!(sane_request_id(&HeaderValue::from_static("")), None);
        let long = "a".repeat(65);
        assert_eq!(
            sane_request_id(&HeaderValue::from_str(&long).unwrap()),
            None
        );
        assert_eq!(new_request_id().len(), 24);
    }

    #[test]
    fn access_lines_follow_the_setting() {
        let fast = Duration::from_millis(3);
        let slow = Duration::from_millis(1000);
        assert!(!access_line(AccessLog::Errors, 200, fast, slow));
        assert!(access_line(AccessLog::Errors, 404, fast, slow));
        assert!(access_line(AccessLog::Errors, 503, fast, slow));
        assert!(access_line(AccessLog::Errors, 200, slow, slow));
        assert!(access_line(AccessLog::All, 200, fast, slow));
        assert!(!access_line(AccessLog::Off, 500, slow, slow));
    }
}
