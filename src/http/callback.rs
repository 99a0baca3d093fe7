//! One callback, checked in the documented order: method, size, content type, app,
//! signature, body. Only a callback that passes every check is forwarded.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request};

use super::error::CallbackError;
use super::State;
use crate::event::{self, Context};
use crate::kafka::{now_ms, Record};
use crate::tencent::{command, sign, Callback, CallbackQuery};

/// The command's metric label, and what became of the callback.
pub async fn handle(
    req: Request<Incoming>,
    state: &Arc<State>,
) -> (&'static str, Result<Option<String>, CallbackError>) {
    let query = req.uri().query().map(CallbackQuery::parse);
    let label = command::metric_label(
        query
            .as_ref()
            .and_then(|q| q.as_ref().ok())
            .and_then(|q| q.command.as_deref()),
    );
    let outcome = process(
        req,
        query.unwrap_or_else(|| Ok(CallbackQuery::default())),
        state,
    )
    .await;
    (label, outcome)
}

/// Returns the MsgKey of what was forwarded, for the log.
async fn process(
    req: Request<Incoming>,
    query: Result<CallbackQuery, String>,
    state: &Arc<State>,
) -> Result<Option<String>, CallbackError> {
    if req.method() != Method::POST {
        return Err(CallbackError::MethodNotAllowed("POST"));
    }
    let limit = state.settings.max_body_bytes;
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
    let body: Bytes = Limited::new(req.into_body(), limit)
        .collect()
        .await
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                CallbackError::PayloadTooLarge(limit)
            } else {
                CallbackError::BadRequest("the body could not be read".into())
            }
        })?
        .to_bytes();
    let query = query.map_err(CallbackError::BadRequest)?;

    let sdk_app_id = query
        .sdk_app_id
        .as_deref()
        .ok_or_else(|| CallbackError::UnknownApp("SdkAppid is missing from the query".into()))?;
    let app = sdk_app_id
        .parse::<u64>()
        .ok()
        .and_then(|id| state.settings.app(id))
        .ok_or_else(|| {
            CallbackError::UnknownApp("SdkAppid is not an app this bridge serves".into())
        })?;
    if !app.tokens.is_empty() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        sign::verify(
            &app.tokens,
            query.sign.as_deref(),
            query.request_time.as_deref(),
            now,
            state.settings.request_time_skew_secs,
        )
        .map_err(CallbackError::Unauthorized)?;
    }

    let callback =
        Callback::parse(query.command.as_deref(), &body).map_err(CallbackError::BadRequest)?;
    let command = match &callback {
        Callback::Sent(_) => command::AFTER_SEND_MSG.to_owned(),
        Callback::Withdrawn(_) => command::AFTER_MSG_WITHDRAW.to_owned(),
        Callback::BeforeSend => return Ok(None),
        Callback::Other { command, .. } if !state.settings.forward_other_commands => {
            tracing::debug!(command = %command, "Answered a callback that is not forwarded.");
            return Ok(None);
        }
        Callback::Other { command, .. } => command.clone(),
    };
    let ctx = Context {
        sdk_app_id: app.sdk_app_id,
        client_ip: query.client_ip.as_deref(),
        platform: query.platform.as_deref(),
        received_at: SystemTime::now(),
    };
    let normalized =
        match event::normalize(&ctx, callback, &body).map_err(CallbackError::BadRequest)? {
            Some(n) => n,
            None => return Ok(None),
        };
    if normalized.keyed_by_conversation {
        state.metrics.keyed_by_conversation.inc();
    }
    let msg_key = normalized.key.clone();
    let record = Record {
        topic: state.settings.topic_for(&command).to_owned(),
        key: normalized.key,
        payload: normalized.payload,
        command,
        sdk_app_id: app.sdk_app_id,
        accepted_at_ms: now_ms(),
    };
    state
        .queue
        .accept(record)
        .await
        .map_err(CallbackError::Unavailable)?;
    Ok(msg_key)
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
