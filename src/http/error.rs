//! The one error type at the HTTP boundary. Each variant has its status, a stable
//! metric label and a reason for Tencent's `ErrorInfo` that never echoes a secret.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::delivery::Rejected;
use crate::tencent::sign::SignError;
use crate::tencent::Invalid;

#[derive(Debug)]
pub enum CallbackError {
    NotFound,
    MethodNotAllowed(&'static str),
    PayloadTooLarge(usize),
    QueryTooLong(usize),
    BodyTimeout,
    UnsupportedMediaType,
    UnknownApp(String),
    /// The source address is outside `allow_networks`.
    Forbidden(String),
    Unauthorized(SignError),
    BadRequest(Invalid),
    /// The connection failed while the body was being read.
    BodyUnreadable,
    Unavailable(Rejected),
    /// A handler panicked.
    Internal,
}

impl CallbackError {
    pub fn status(&self) -> StatusCode {
        match self {
            CallbackError::NotFound => StatusCode::NOT_FOUND,
            CallbackError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            CallbackError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            CallbackError::QueryTooLong(_) => StatusCode::URI_TOO_LONG,
            CallbackError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            CallbackError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            CallbackError::UnknownApp(_) | CallbackError::Forbidden(_) => StatusCode::FORBIDDEN,
            CallbackError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            CallbackError::BadRequest(_) | CallbackError::BodyUnreadable => StatusCode::BAD_REQUEST,
            CallbackError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            CallbackError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The `outcome` label of `tim_bridge_callbacks_total`.
    pub fn label(&self) -> &'static str {
        match self {
            CallbackError::NotFound => "not_found",
            CallbackError::MethodNotAllowed(_) => "method_not_allowed",
            CallbackError::PayloadTooLarge(_) => "body_too_large",
            CallbackError::QueryTooLong(_) => "query_too_long",
            CallbackError::BodyTimeout => "body_timeout",
            CallbackError::UnsupportedMediaType => "unsupported_media_type",
            CallbackError::UnknownApp(_) => "unknown_app",
            CallbackError::Forbidden(_) => "source_not_allowed",
            CallbackError::Unauthorized(SignError::Missing(_)) => "signature_missing",
            CallbackError::Unauthorized(SignError::Skewed { .. } | SignError::BadRequestTime) => {
                "request_time_skewed"
            }
            CallbackError::Unauthorized(SignError::Mismatch) => "signature_mismatch",
            CallbackError::BadRequest(_) | CallbackError::BodyUnreadable => "bad_body",
            CallbackError::Unavailable(Rejected::QueueFull) => "queue_full",
            CallbackError::Unavailable(Rejected::SpoolFull) => "spool_full",
            CallbackError::Unavailable(Rejected::SpoolFailed) => "spool_error",
            CallbackError::Unavailable(Rejected::ShuttingDown) => "shutting_down",
            CallbackError::Internal => "internal_error",
        }
    }

    pub fn reason(&self) -> String {
        match self {
            CallbackError::NotFound => "no such path".into(),
            CallbackError::MethodNotAllowed(allow) => format!("method not allowed; use {allow}"),
            CallbackError::PayloadTooLarge(limit) => {
                format!("the body is larger than {limit} bytes")
            }
            CallbackError::QueryTooLong(limit) => {
                format!("the query string is longer than {limit} bytes")
            }
            CallbackError::BodyTimeout => "the body took too long to arrive".into(),
            CallbackError::UnsupportedMediaType => {
                "the content type must be application/json".into()
            }
            CallbackError::UnknownApp(reason) | CallbackError::Forbidden(reason) => reason.clone(),
            CallbackError::BadRequest(invalid) => invalid.to_string(),
            CallbackError::BodyUnreadable => "the body could not be read".into(),
            CallbackError::Unauthorized(e) => e.reason(),
            CallbackError::Unavailable(Rejected::QueueFull) => {
                "the bridge is overloaded; try again later".into()
            }
            CallbackError::Unavailable(Rejected::SpoolFull) => {
                "the bridge's spool is full; try again later".into()
            }
            CallbackError::Unavailable(Rejected::SpoolFailed) => {
                "the bridge cannot store the event".into()
            }
            CallbackError::Unavailable(Rejected::ShuttingDown) => {
                "the bridge is shutting down; try again".into()
            }
            CallbackError::Internal => "the bridge failed on this request; try again".into(),
        }
    }

    pub fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = tencent_response(self.status(), &Answer::fail(self.reason()));
        if let CallbackError::MethodNotAllowed(allow) = self {
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

/// Tencent's answer shape.
#[derive(Serialize)]
pub struct Answer {
    #[serde(rename = "ActionStatus")]
    action_status: &'static str,
    #[serde(rename = "ErrorCode")]
    error_code: u8,
    #[serde(rename = "ErrorInfo")]
    error_info: String,
}

impl Answer {
    fn fail(reason: String) -> Self {
        Answer {
            action_status: "FAIL",
            error_code: 1,
            error_info: reason,
        }
    }
}

pub const OK_BODY: &str = r#"{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}"#;

pub fn ok_response() -> Response<Full<Bytes>> {
    json_response(StatusCode::OK, Bytes::from_static(OK_BODY.as_bytes()))
}

/// OK with a body of its own (a before-callback's allow shape).
pub fn answer_response(body: Vec<u8>) -> Response<Full<Bytes>> {
    json_response(StatusCode::OK, Bytes::from(body))
}

fn tencent_response(status: StatusCode, answer: &Answer) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(answer).expect("an answer always serializes");
    json_response(status, Bytes::from(body))
}

fn json_response(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
