//! One callback, checked in the documented order: method, size, content type, app,
//! signature, body. Only a callback that passes every check is forwarded.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request};
use opentelemetry::trace::Status;
use opentelemetry::KeyValue;

use super::admit::admit;
use super::error::CallbackError;
use super::{Caller, State};
use crate::dedup::{fingerprint, Fingerprint};
use crate::metrics::KindLabels;
use crate::tencent::{command, CallbackQuery, Invalid};

/// Tencent's query is a few hundred bytes; anything far longer is not from Tencent.
const MAX_QUERY_BYTES: usize = 4096;

/// A callback answered OK: the key of what was forwarded (for the log), and the
/// answer when it is more than the plain OK.
#[derive(Debug, Default)]
pub struct Handled {
    pub first_key: Option<String>,
    pub answer: Option<Vec<u8>>,
}

/// The command's metric label, and what became of the callback.
pub async fn handle(
    req: Request<Incoming>,
    state: &Arc<State>,
    caller: &mut Caller,
) -> Result<Handled, CallbackError> {
    if req.uri().query().is_some_and(|q| q.len() > MAX_QUERY_BYTES) {
        return Err(CallbackError::QueryTooLong(MAX_QUERY_BYTES));
    }
    let query = req.uri().query().map(CallbackQuery::parse);
    let label = command::metric_label(
        query
            .as_ref()
            .and_then(|q| q.as_ref().ok())
            .and_then(|q| q.command.as_deref()),
    );
    caller.command = label;
    // Only a number: the query is the sender's text, and must not forge log lines.
    caller.app = query
        .as_ref()
        .and_then(|q| q.as_ref().ok())
        .and_then(|q| q.sdk_app_id.as_deref()?.parse::<u64>().ok());
    let span = tracing::Span::current();
    span.record("command", tracing::field::display(label));
    if let Some(app) = caller.app {
        span.record("app", app);
    }
    process(
        req,
        query.unwrap_or_else(|| Ok(CallbackQuery::default())),
        state,
        caller.trace.map(|own| (own, caller.trace_state.clone())),
    )
    .await
}

async fn process(
    req: Request<Incoming>,
    query: Result<CallbackQuery, Invalid>,
    state: &Arc<State>,
    traced_by: Option<(crate::telemetry::TraceContext, Option<Arc<str>>)>,
) -> Result<Handled, CallbackError> {
    let trace = traced_by.as_ref().map(|(own, _)| *own);
    if req.method() != Method::POST {
        return Err(CallbackError::MethodNotAllowed("POST"));
    }
    let limit = state.http.max_body_bytes.get();
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(CallbackError::PayloadTooLarge(limit));
    }
    if !json_or_absent(req.headers().get(CONTENT_TYPE)) {
        return Err(CallbackError::UnsupportedMediaType);
    }
    let read_timeout = state.http.body_read_timeout;
    let body: Bytes =
        tokio::time::timeout(read_timeout, Limited::new(req.into_body(), limit).collect())
            .await
            .map_err(|_| CallbackError::BodyTimeout)?
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    CallbackError::PayloadTooLarge(limit)
                } else {
                    CallbackError::BodyUnreadable
                }
            })?
            .to_bytes();
    let now = SystemTime::now();
    let now_secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    // A sampled callback's steps are its server span's children.
    let traced = state.telemetry.as_deref().zip(trace.filter(|t| t.sampled));
    let admitted = admit(&state.admission, query, &body, now_secs, now);
    if let Some((telemetry, server)) = traced {
        let (events, status) = match &admitted {
            Ok(a) => (a.events.len() as i64, Status::Unset),
            Err(e) => (0, Status::error(e.label())),
        };
        let attributes = vec![KeyValue::new("tim.events", events)];
        telemetry.step("admit", server, now, attributes, status);
    }
    let mut admitted = admitted?;
    let replay_key = admitted.replay_key;
    let mut handled = Handled {
        first_key: None,
        answer: admitted.answer.take(),
    };
    // A signed request is only valid inside its freshness window: one seen in it already
    // is a replay (or Tencent's retry of the very same request).
    if replay_key.is_some_and(|k| !state.requests_seen.reserve(k)) {
        state
            .metrics
            .duplicates
            .get_or_create(&KindLabels { kind: "request" })
            .inc();
        tracing::debug!("A replayed signed request was answered and not published again.");
        return Ok(handled);
    }
    // Only with a dedup window: each event's id is fingerprinted once, and kept to be
    // marked as seen after the events are accepted.
    let ids: Vec<Fingerprint> = match &state.events_seen {
        None => Vec::new(),
        Some(seen) => {
            let mut ids = Vec::with_capacity(admitted.events.len());
            admitted.events.retain(|e| {
                let id = fingerprint(&[e.id.as_bytes()]);
                let fresh = seen.reserve(id);
                if fresh {
                    ids.push(id);
                } else {
                    state
                        .metrics
                        .duplicates
                        .get_or_create(&KindLabels { kind: "event" })
                        .inc();
                }
                fresh
            });
            ids
        }
    };
    let Some(first_key) = admitted.events.first().map(|e| e.key.clone()) else {
        return Ok(handled);
    };
    if admitted.events.iter().any(|e| e.keyed_by_conversation) {
        state.metrics.keyed_by_conversation.inc();
    }
    let mut records = state.routes.route(admitted);
    if let Some((server, state)) = traced_by {
        for record in &mut records {
            record.trace = Some(crate::telemetry::RecordTrace {
                context: server.child(),
                parent_span_id: server.span_id,
                state: state.clone(),
            });
        }
    }
    let appending = traced.map(|_| SystemTime::now());
    let accepted = state.buffer.accept(records).await;
    if let (Some((telemetry, server)), Some(appending)) = (traced, appending) {
        let status = match accepted {
            Ok(()) => Status::Unset,
            Err(rejected) => Status::error(CallbackError::Unavailable(rejected).label()),
        };
        let name = if state.buffer.is_durable() {
            "spool append"
        } else {
            "queue"
        };
        telemetry.step(name, server, appending, Vec::new(), status);
    }
    if let Err(rejected) = accepted {
        // Not taken: Tencent's retry of this request, or these events, must get in.
        if let Some(k) = replay_key {
            state.requests_seen.release(&k);
        }
        if let Some(seen) = &state.events_seen {
            ids.iter().for_each(|id| seen.release(id));
        }
        return Err(CallbackError::Unavailable(rejected));
    }
    handled.first_key = first_key;
    Ok(handled)
}

fn json_or_absent(content_type: Option<&hyper::header::HeaderValue>) -> bool {
    let Some(value) = content_type else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json") || essence.is_empty()
}

#[cfg(test)]
mod tests {
    use super::json_or_absent;
    use hyper::header::HeaderValue;

    #[test]
    fn json_with_parameters_or_no_content_type_is_taken() {
        assert!(json_or_absent(None));
        for ok in ["application/json", "Application/JSON; charset=utf-8"] {
            assert!(json_or_absent(Some(&HeaderValue::from_static(ok))), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/jsonp",
        ] {
            assert!(
                !json_or_absent(Some(&HeaderValue::from_static(bad))),
                "{bad}"
            );
        }
    }
}
