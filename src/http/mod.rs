//! The HTTP server: the callback path, `/healthz`, `/readyz`, `/metrics`.

mod admin_server;
mod admit;
mod callback;
mod error;
pub mod fuzzing;
mod server;
mod tls;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use tracing::Instrument;

pub use crate::route::Admitted;
pub use admin_server::serve_admin;
pub use admit::admit;
pub use error::{CallbackError, OK_BODY};
pub use server::serve;
pub use tls::{CertificateError, Certificates};

use crate::delivery::Buffer;
use crate::kafka::Readiness;
use crate::metrics::Metrics;
use crate::route::Routes;
use crate::settings::{client_address, Admission, HttpConfig};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

pub struct State {
    pub http: HttpConfig,
    pub admission: Admission,
    /// Signed requests answered recently, to drop replays inside the freshness window.
    pub requests_seen: crate::dedup::Seen,
    /// Event ids published recently, when `dedup_window_secs` is set.
    pub events_seen: Option<crate::dedup::Seen>,
    pub buffer: Arc<dyn Buffer>,
    pub routes: Routes,
    pub readiness: Arc<Readiness>,
    pub metrics: Arc<Metrics>,
    /// Traces, when `[tracing]` has an endpoint.
    pub telemetry: Option<Arc<crate::telemetry::Telemetry>>,
    /// One rejection line per reason per interval; `tim_bridge_callbacks_total` counts each.
    pub rejection_lines: crate::quota::LineQuota,
}

async fn route(req: Request<Incoming>, state: &Arc<State>, peer: IpAddr) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if path == state.http.callback_path {
        // Every line logged about this callback carries who sent it, for which app
        // and command (the last two recorded once the query is read). The outcome's
        // own line names all three at any level; the span, for RUST_LOG=debug, puts
        // them on every other line too (always on, it cost ~9% of throughput).
        let span = tracing::debug_span!(
            "callback",
            %peer,
            app = tracing::field::Empty,
            command = tracing::field::Empty
        );
        return async {
            let mut caller = Caller {
                peer: Some(peer),
                app: None,
                command: "none",
                trace: None,
                trace_state: None,
            };
            match source_allowed(&req, state, peer) {
                Err(error) => emit(state, &caller, Err(error)),
                Ok(()) => answer_callback(req, state, &mut caller).await,
            }
        }
        .instrument(span)
        .await;
    }
    if !state.http.serves_admin && path != "/healthz" {
        return reject(state, "none", CallbackError::NotFound);
    }
    respond(admin_page(path, state), &req, state)
}

/// `/healthz`, `/readyz` and `/metrics`, wherever they are served.
fn admin_page(path: &str, state: &State) -> Option<(StatusCode, String, &'static str)> {
    let broken = (path == "/readyz").then(|| state.buffer.broken()).flatten();
    let trouble = (path == "/readyz")
        .then(|| state.buffer.trouble())
        .flatten();
    let page = match path {
        "/healthz" => Some((
            StatusCode::OK,
            "ok\n".to_owned(),
            "text/plain; charset=utf-8",
        )),
        "/readyz" if broken.is_some() => Some((
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", broken.unwrap_or_default()),
            "text/plain; charset=utf-8",
        )),
        // A configuration that never worked stops a rollout at its first replica, in
        // both ack modes; callbacks that still arrive are taken as usual.
        "/readyz" if !state.readiness.has_worked() => Some((
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: Kafka has not worked since start: {}\n",
                state.readiness.reason()
            ),
            "text/plain; charset=utf-8",
        )),
        // Callbacks are still stored, but the spool cannot keep house: say so, whatever Kafka does.
        "/readyz" if trouble.is_some() && !state.buffer.is_full() => Some((
            StatusCode::OK,
            format!("degraded: {}\n", trouble.unwrap_or_default()),
            "text/plain; charset=utf-8",
        )),
        "/readyz" if trouble.is_some() => Some((
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: the spool is full because {}\n",
                trouble.unwrap_or_default()
            ),
            "text/plain; charset=utf-8",
        )),
        "/readyz" if state.readiness.is_ready() => Some((
            StatusCode::OK,
            "ready\n".into(),
            "text/plain; charset=utf-8",
        )),
        // With the spool, callbacks are safe while Kafka is away: degraded, not unready.
        "/readyz" if state.buffer.is_durable() && !state.buffer.is_full() => Some((
            StatusCode::OK,
            format!(
                "degraded: {}; events wait in the spool\n",
                state.readiness.reason()
            ),
            "text/plain; charset=utf-8",
        )),
        "/readyz" => Some((
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", state.readiness.reason()),
            "text/plain; charset=utf-8",
        )),
        "/metrics" => Some((
            StatusCode::OK,
            state.metrics.encode(),
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )),
        _ => None,
    };
    page
}

fn respond(
    page: Option<(StatusCode, String, &'static str)>,
    req: &Request<Incoming>,
    state: &State,
) -> Response<Full<Bytes>> {
    match page {
        None => reject(state, "none", CallbackError::NotFound),
        Some(_) if req.method() != Method::GET && req.method() != Method::HEAD => {
            reject(state, "none", CallbackError::MethodNotAllowed("GET"))
        }
        Some((status, body, content_type)) => {
            let mut response = Response::new(Full::new(Bytes::from(body)));
            *response.status_mut() = status;
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
            response
        }
    }
}

async fn answer_callback(
    req: Request<Incoming>,
    state: &Arc<State>,
    caller: &mut Caller,
) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let traced = state.telemetry.as_ref().map(|telemetry| {
        let header = req
            .headers()
            .get("traceparent")
            .and_then(|v| v.to_str().ok());
        let (own, parent) = telemetry.server_context(header);
        caller.trace = Some(own);
        // A caller's tracestate goes with its valid traceparent, or not at all.
        if parent.is_some() {
            caller.trace_state = req
                .headers()
                .get("tracestate")
                .and_then(|v| v.to_str().ok())
                .and_then(crate::delivery::trace::trace_state);
        }
        (telemetry, own, parent, SystemTime::now())
    });
    let outcome = callback::handle(req, state, caller).await;
    // Under load, the worker then handles every other ready connection before it
    // writes this answer, so answers leave in bursts rather than one wake-up of the
    // client per request: +21% callbacks/s at 64 connections, +10% at 1,024
    // (bench/results/2026-12-05-answers-in-bursts.md). Idle, it costs nothing.
    tokio::task::yield_now().await;
    let response = emit(state, caller, outcome);
    state
        .metrics
        .callback_duration
        .observe(started.elapsed().as_secs_f64());
    // An unsampled callback (99 in 100 at 1 %) builds no span at all.
    if let Some((telemetry, own, parent, start)) = traced.filter(|t| t.1.sampled) {
        telemetry.finish(server_span(
            state,
            caller,
            own,
            parent,
            start,
            response.status(),
        ));
    }
    response
}

/// The callback's server span: the request and its answer, never its body or query.
fn server_span(
    state: &State,
    caller: &Caller,
    own: crate::telemetry::TraceContext,
    parent: Option<crate::telemetry::TraceContext>,
    start: SystemTime,
    status: hyper::StatusCode,
) -> crate::telemetry::Finished {
    use opentelemetry::trace::{SpanKind, Status};
    use opentelemetry::KeyValue;
    let mut attributes = vec![
        KeyValue::new("http.request.method", "POST"),
        KeyValue::new("url.path", state.http.callback_path.clone()),
        KeyValue::new("http.route", state.http.callback_path.clone()),
        KeyValue::new("http.response.status_code", status.as_u16() as i64),
        KeyValue::new("tim.command", caller.command),
    ];
    if let Some(app) = caller.app {
        attributes.push(KeyValue::new("tim.sdkappid", app as i64));
    }
    crate::telemetry::Finished {
        name: format!("POST {}", state.http.callback_path).into(),
        kind: SpanKind::Server,
        context: own,
        parent: parent.map(|p| p.span_id),
        parent_remote: parent.is_some(),
        start,
        end: SystemTime::now(),
        attributes,
        events: Vec::new(),
        links: Vec::new(),
        status: if status.is_server_error() {
            Status::error(status.to_string())
        } else {
            Status::Unset
        },
    }
}

/// The allowlist, when there is one: the peer, or the client a trusted proxy names.
fn source_allowed(
    req: &Request<Incoming>,
    state: &State,
    peer: IpAddr,
) -> Result<(), CallbackError> {
    let settings = &state.http;
    if settings.allow_networks.is_empty() {
        return Ok(());
    }
    let forwarded = req
        .headers()
        .get_all(X_FORWARDED_FOR)
        .iter()
        .map(|v| v.to_str().unwrap_or("?"))
        .collect::<Vec<_>>()
        .join(",");
    let forwarded = (!forwarded.is_empty()).then_some(forwarded.as_str());
    match client_address(peer, forwarded, &settings.trusted_proxies) {
        Some(client) if settings.allow_networks.iter().any(|n| n.contains(client)) => Ok(()),
        Some(client) => Err(CallbackError::Forbidden(format!(
            "the source address {client} is not allowed"
        ))),
        None => Err(CallbackError::Forbidden(
            "X-Forwarded-For from a trusted proxy does not name an address".into(),
        )),
    }
}

/// Who a request came from, as far as it is known when its outcome is emitted.
pub struct Caller {
    peer: Option<IpAddr>,
    /// The query's SdkAppid, when it is a number.
    app: Option<u64>,
    /// The command's metric label (`none` before the query is read).
    command: &'static str,
    /// The callback's server span, when tracing is on: its events' producer spans are
    /// its children.
    trace: Option<crate::telemetry::TraceContext>,
    /// The caller's `tracestate`, written on each record beside `traceparent`.
    trace_state: Option<std::sync::Arc<str>>,
}

fn reject(state: &State, command: &'static str, error: CallbackError) -> Response<Full<Bytes>> {
    let caller = Caller {
        peer: None,
        app: None,
        command,
        trace: None,
        trace_state: None,
    };
    emit(state, &caller, Err(error))
}

/// The one place a request's outcome is counted, logged and answered, together:
/// the metric and the log line can never disagree.
fn emit(
    state: &State,
    caller: &Caller,
    outcome: Result<callback::Handled, CallbackError>,
) -> Response<Full<Bytes>> {
    let command = caller.command;
    let error = match outcome {
        Ok(handled) => {
            state.metrics.callback(command, "ok");
            tracing::debug!(
                msg_key = handled.first_key.as_deref().unwrap_or(""),
                "Accepted a callback."
            );
            return match handled.answer {
                None => error::ok_response(),
                Some(answer) => error::answer_response(answer),
            };
        }
        Err(error) => error,
    };
    state.metrics.callback(command, error.label());
    let Some(since) = state.rejection_lines.take(error.label()) else {
        return error.into_response();
    };
    let status = error.status().as_u16();
    let reason = error.reason();
    match error {
        CallbackError::NotFound | CallbackError::MethodNotAllowed(_) => tracing::info!(
            command = %command,
            status,
            reason = %reason,
            rejected_since_last_line = since,
            "Rejected a request."
        ),
        _ => tracing::warn!(
            peer = caller.peer.map(tracing::field::display),
            app = caller.app,
            command = %command,
            status,
            reason = %reason,
            rejected_since_last_line = since,
            "Rejected a callback."
        ),
    }
    error.into_response()
}
