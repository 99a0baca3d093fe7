//! The HTTP server: the callback path, `/healthz`, `/readyz`, `/metrics`.

mod callback;
mod error;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

pub use error::{CallbackError, OK_BODY};

use crate::kafka::Readiness;
use crate::metrics::Metrics;
use crate::queue::Queue;
use crate::settings::Settings;

pub struct State {
    pub settings: Settings,
    /// Signed requests answered recently, to drop replays inside the freshness window.
    pub requests_seen: crate::dedup::Seen,
    /// Event ids published recently, when `dedup_window_secs` is set.
    pub events_seen: Option<crate::dedup::Seen>,
    pub queue: Queue,
    pub readiness: Arc<Readiness>,
    pub metrics: Arc<Metrics>,
}

/// Serves until `shutdown` resolves, then stops accepting and gives open connections
/// up to `drain` to finish.
pub async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _peer) = match accepted {
                    Ok(conn) => conn,
                    Err(error) => {
                        tracing::warn!(error = %error, "Could not accept a connection.");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let state = Arc::clone(&state);
                let service = service_fn(move |req| {
                    let state = Arc::clone(&state);
                    async move { Ok::<_, Infallible>(route(req, &state).await) }
                });
                let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
                tokio::spawn(async move {
                    if let Err(error) = connection.await {
                        tracing::debug!(error = %error, "A connection ended with an error.");
                    }
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(drain) => {
            tracing::warn!(drain_ms = drain.as_millis() as u64, "Connections still open after the drain time; closing them.");
        }
    }
}

async fn route(req: Request<Incoming>, state: &Arc<State>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if path == state.settings.callback_path {
        return answer_callback(req, state).await;
    }
    let page = match path {
        "/healthz" => Some((
            StatusCode::OK,
            "ok\n".to_owned(),
            "text/plain; charset=utf-8",
        )),
        "/readyz" if state.readiness.is_ready() => Some((
            StatusCode::OK,
            "ready\n".into(),
            "text/plain; charset=utf-8",
        )),
        // With the spool, callbacks are safe while Kafka is away: degraded, not unready.
        "/readyz" if state.queue.is_durable() && !state.queue.is_full() => Some((
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

async fn answer_callback(req: Request<Incoming>, state: &Arc<State>) -> Response<Full<Bytes>> {
    let started = Instant::now();
    let (command, outcome) = callback::handle(req, state).await;
    let response = match outcome {
        Ok(msg_key) => {
            state.metrics.callback(command, "ok");
            tracing::debug!(
                command,
                msg_key = msg_key.as_deref().unwrap_or(""),
                "Accepted a callback."
            );
            error::ok_response()
        }
        Err(e) => reject(state, command, e),
    };
    state
        .metrics
        .callback_duration
        .observe(started.elapsed().as_secs_f64());
    response
}

fn reject(state: &State, command: &'static str, error: CallbackError) -> Response<Full<Bytes>> {
    state.metrics.callback(command, error.label());
    let status = error.status().as_u16();
    let reason = error.reason();
    match error {
        CallbackError::NotFound | CallbackError::MethodNotAllowed(_) => {
            tracing::info!(command, status, reason = %reason, "Rejected a request.")
        }
        _ => tracing::warn!(command, status, reason = %reason, "Rejected a callback."),
    }
    error.into_response()
}
