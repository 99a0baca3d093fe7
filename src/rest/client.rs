//! One app's client of Tencent's REST API (../shared/tencent-rest.md §0, from
//! intl.cloud.tencent.com/document/product/1047/34620): HTTPS POST of a JSON body to
//! `{base}/v4/{service}/{command}?sdkappid=…&identifier=<admin>&usersig=…&random=<u32>&contenttype=json`;
//! the answer is HTTP 200 with `ActionStatus`, `ErrorCode` and `ErrorInfo` in the body.
//!
//! Tencent's limits are kept without being told twice: at most `per_second` calls of
//! one API (10/s for `get_history`, 200/s for the others), and the errors that mean
//! "too often" or "try later" (60007, 60011, 60018, 60019, 5xx, timeouts) are retried
//! with a backoff; the ones no retry fixes stop at once, naming the setting to check.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Uri};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::usersig;
use crate::outbound::{self, HttpsClient};
use crate::settings::Secret;

/// Longer than Tencent's own 3 s.
const TIMEOUT: Duration = Duration::from_secs(10);
/// A UserSig is made for this long and made again a day before it ends.
const SIG_VALIDITY: u64 = 7 * 86_400;
const SIG_RENEW_BEFORE: u64 = 86_400;
const ATTEMPTS: u32 = 6;
/// The largest answer read: a `get_history` answer lists a few files.
const MAX_ANSWER_BYTES: usize = 1 << 20;

pub struct Rest {
    base: String,
    sdk_app_id: u64,
    admin: String,
    key: Secret,
    http: HttpsClient,
    /// The UserSig in use and when it was made.
    sig: Mutex<(String, u64)>,
    /// Per API: when its next call may go.
    next_call: Mutex<HashMap<&'static str, Instant>>,
}

/// Why a call did not succeed.
#[derive(Debug)]
pub enum RestError {
    /// Tencent answered with an error code.
    Tencent {
        api: &'static str,
        code: i64,
        info: String,
    },
    Status {
        api: &'static str,
        status: u16,
    },
    Network {
        api: &'static str,
        problem: String,
    },
    Answer {
        api: &'static str,
        problem: String,
    },
}

impl RestError {
    /// Errors worth another try: rate limits, "try later", 5xx, the network.
    pub fn retriable(&self) -> bool {
        match self {
            RestError::Tencent { code, .. } => {
                matches!(code, 60007 | 60011 | 60018 | 60019 | 60008)
            }
            RestError::Status { status, .. } => *status >= 500,
            RestError::Network { .. } => true,
            RestError::Answer { .. } => false,
        }
    }

    /// An error no retry fixes and no later hour gets past (the app's credentials,
    /// edition or allowlist).
    pub fn is_fatal(&self) -> bool {
        self.setting().is_some()
    }

    /// What to check for an error no retry fixes.
    fn setting(&self) -> Option<&'static str> {
        match self {
            RestError::Tencent { code, .. } => match code {
                60004 | 60005 => {
                    Some("the app's admin and secret_key ([[apps]], or TIM_BRIDGE_SECRET_KEY)")
                }
                60006 => Some("the app's sdk_app_id"),
                60010 => Some("the app's admin: it must be an App admin account"),
                60020 => Some("the app's edition in the IM console (Pro or above)"),
                60021 => Some("the IP allowlist of the REST API in the IM console"),
                _ => None,
            },
            _ => None,
        }
    }
}

impl std::fmt::Display for RestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestError::Tencent { api, code, info } => {
                write!(f, "{api}: Tencent answered error {code} ({info})")?;
                if let Some(setting) = self.setting() {
                    write!(f, "; check {setting}")?;
                }
                Ok(())
            }
            RestError::Status { api, status } => write!(f, "{api}: HTTP {status}"),
            RestError::Network { api, problem } => write!(f, "{api}: {problem}"),
            RestError::Answer { api, problem } => write!(f, "{api}: unreadable answer ({problem})"),
        }
    }
}

impl std::error::Error for RestError {}

#[derive(Deserialize)]
struct Status {
    #[serde(rename = "ActionStatus", default)]
    action_status: String,
    #[serde(rename = "ErrorCode", default)]
    error_code: i64,
    #[serde(rename = "ErrorInfo", default)]
    error_info: String,
}

impl Rest {
    /// `base`: `https://console.tim.qq.com`, another region's domain, or a gateway.
    pub fn new(
        base: &str,
        sdk_app_id: u64,
        admin: &str,
        key: Secret,
        ca_file: Option<&Path>,
    ) -> Result<Self, outbound::ClientError> {
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            sdk_app_id,
            admin: admin.to_owned(),
            key,
            http: outbound::client(ca_file, TIMEOUT, 4)?,
            sig: Mutex::new((String::new(), 0)),
            next_call: Mutex::default(),
        })
    }

    pub fn http(&self) -> &HttpsClient {
        &self.http
    }

    /// Calls `service/command` with `body`; `per_second` is the API's documented limit.
    pub async fn call<T: DeserializeOwned>(
        &self,
        api: &'static str,
        per_second: u32,
        body: &Value,
    ) -> Result<T, RestError> {
        let mut attempt = 0;
        loop {
            self.wait_turn(api, per_second).await;
            match self.once(api, body).await {
                Err(error) if error.retriable() && attempt + 1 < ATTEMPTS => {
                    attempt += 1;
                    let wait = Duration::from_millis(200 << attempt.min(6));
                    tracing::warn!(error = %error, attempt, "Tencent's REST API asks to try later; retrying.");
                    tokio::time::sleep(wait).await;
                }
                result => return result,
            }
        }
    }

    async fn once<T: DeserializeOwned>(
        &self,
        api: &'static str,
        body: &Value,
    ) -> Result<T, RestError> {
        let uri: Uri = format!(
            "{}/v4/{api}?sdkappid={}&identifier={}&usersig={}&random={}&contenttype=json",
            self.base,
            self.sdk_app_id,
            self.admin,
            self.user_sig(),
            rand_u32()
        )
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| RestError::Network {
            api,
            problem: format!("bad URL: {e}"),
        })?;
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("a valid request");
        let answer = tokio::time::timeout(TIMEOUT, self.http.request(request))
            .await
            .map_err(|_| RestError::Network {
                api,
                problem: format!("no answer within {} s", TIMEOUT.as_secs()),
            })?
            .map_err(|e| RestError::Network {
                api,
                problem: outbound::with_causes(&e),
            })?;
        let status = answer.status().as_u16();
        if status != 200 {
            return Err(RestError::Status { api, status });
        }
        let bytes = http_body_util::Limited::new(answer.into_body(), MAX_ANSWER_BYTES)
            .collect()
            .await
            .map_err(|e| RestError::Network {
                api,
                problem: e.to_string(),
            })?
            .to_bytes();
        let head: Status = serde_json::from_slice(&bytes).map_err(|e| RestError::Answer {
            api,
            problem: e.to_string(),
        })?;
        if head.action_status != "OK" || head.error_code != 0 {
            return Err(RestError::Tencent {
                api,
                code: head.error_code,
                info: head.error_info,
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| RestError::Answer {
            api,
            problem: e.to_string(),
        })
    }

    /// The admin's UserSig, made again a day before it expires; never logged.
    fn user_sig(&self) -> String {
        let now = unix_now();
        let mut sig = self.sig.lock().unwrap_or_else(|e| e.into_inner());
        if sig.0.is_empty() || now + SIG_RENEW_BEFORE >= sig.1 + SIG_VALIDITY {
            let made = usersig::user_sig(
                self.sdk_app_id,
                &self.admin,
                self.key.expose(),
                now,
                SIG_VALIDITY,
            );
            *sig = (made, now);
        }
        sig.0.clone()
    }

    /// Waits until `api` may be called again at `per_second`.
    async fn wait_turn(&self, api: &'static str, per_second: u32) {
        let spacing = Duration::from_secs(1) / per_second.max(1);
        let at = {
            let mut next = self.next_call.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let at = next.get(api).copied().filter(|at| *at > now).unwrap_or(now);
            next.insert(api, at + spacing);
            at
        };
        tokio::time::sleep_until(at.into()).await;
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A fresh 32-bit number per request, as the URL's `random` asks.
fn rand_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.finish() as u32
}
