//! The pure part of a callback's path, from the query string and the body to the events
//! to publish: app, signature, body, normalization. No I/O and no state, so the fuzzer
//! (`fuzz/`) and the corpus regression test run exactly what the server runs.

use std::time::SystemTime;

use super::error::CallbackError;
use crate::dedup::fingerprint;
use crate::event::{self, Context};
use crate::route::Admitted;
use crate::settings::Admission;
use crate::tencent::{before, sign, Callback, CallbackQuery, Family, Invalid};

/// Checks in the documented order and normalizes. `now_secs` is the local clock for
/// the `RequestTime` check.
pub fn admit(
    admission: &Admission,
    query: Result<CallbackQuery, Invalid>,
    body: &[u8],
    now_secs: u64,
    received_at: SystemTime,
) -> Result<Admitted, CallbackError> {
    let query = query.map_err(CallbackError::BadRequest)?;
    let sdk_app_id = query
        .sdk_app_id
        .as_deref()
        .ok_or_else(|| CallbackError::UnknownApp("SdkAppid is missing from the query".into()))?;
    let app = sdk_app_id
        .parse::<u64>()
        .ok()
        .and_then(|id| admission.app(id))
        .ok_or_else(|| {
            CallbackError::UnknownApp("SdkAppid is not an app this bridge serves".into())
        })?;
    let mut replay_key = None;
    if !app.tokens.is_empty() {
        // Keyed on the signature's bytes, not its text: `Sign` in upper case is the
        // same signature, so the same request.
        let signature = sign::verify(
            &app.tokens,
            query.sign.as_deref(),
            query.request_time.as_deref(),
            now_secs,
            admission.request_time_skew.as_secs(),
        )
        .map_err(CallbackError::Unauthorized)?;
        let time = query.request_time.as_deref().unwrap_or("");
        replay_key = Some(fingerprint(&[
            &app.sdk_app_id.to_le_bytes(),
            &signature,
            time.as_bytes(),
            body,
        ]));
    }
    let answer = query
        .command
        .as_deref()
        .and_then(|c| before::allow_body(c, body));
    let nothing = |command: &str, answer: Option<Vec<u8>>| Admitted {
        sdk_app_id: app.sdk_app_id,
        command: command.to_owned(),
        family: Family::Other,
        events: Vec::new(),
        replay_key,
        answer,
    };
    let callback = match Callback::parse(
        query.command.as_deref(),
        body,
        admission.publish_before_callbacks,
    ) {
        Ok(callback) => callback,
        // Never block a user or an operation because the bridge cannot read its body.
        Err(reason) if query.command.as_deref().is_some_and(before::is_before) => {
            let command = query.command.as_deref().unwrap_or_default();
            if let Some(since) = crate::quota::BEFORE_CALLBACK_LINES.take("unreadable") {
                tracing::warn!(
                    command = crate::tencent::command::metric_label(Some(command)),
                    reason = %reason,
                    unreadable_since_last_line = since,
                    "A before-callback cannot be published; it is allowed all the same."
                );
            }
            return Ok(nothing(command, answer));
        }
        Err(reason) => return Err(CallbackError::BadRequest(reason)),
    };
    let published_before =
        before::is_before(callback.command()) && admission.publish_before_callbacks;
    if matches!(callback, Callback::Other { .. })
        && !admission.forward_other_commands
        && !published_before
    {
        return Ok(nothing(callback.command(), answer));
    }
    let (command, family) = (callback.command().to_owned(), callback.family());
    let ctx = Context {
        sdk_app_id: app.sdk_app_id,
        command: &command,
        client_ip: query.client_ip.as_deref(),
        platform: query.platform.as_deref(),
        received_at,
        origin: None,
    };
    let events = event::normalize(&ctx, callback, body).map_err(CallbackError::BadRequest)?;
    Ok(Admitted {
        sdk_app_id: app.sdk_app_id,
        command,
        family,
        events,
        replay_key,
        answer,
    })
}
