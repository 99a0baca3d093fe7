//! Where replayed events go: JSON lines on stdout, or POSTs to an internal service.

use std::io::Write;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use http_body_util::Full;
use hyper::Uri;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

pub struct Endpoint {
    client: Client<HttpConnector, Full<Bytes>>,
    url: Uri,
}

pub enum Sink {
    Stdout,
    Url(Box<Endpoint>),
}

impl Sink {
    pub fn stdout() -> Self {
        Sink::Stdout
    }

    pub fn url(url: &str) -> Result<Self, String> {
        let url: Uri = url.parse().map_err(|e| format!("--to-url {url}: {e}"))?;
        if url.scheme_str() != Some("http") {
            return Err(format!(
                "--to-url {url}: only http:// URLs (an internal endpoint) are supported"
            ));
        }
        Ok(Sink::Url(Box::new(Endpoint {
            client: Client::builder(TokioExecutor::new()).build_http(),
            url,
        })))
    }

    /// A delivered event is committed past at once; printed lines are committed in groups.
    pub fn commits_each(&self) -> bool {
        matches!(self, Sink::Url(_))
    }

    /// Returns once the event is written out: printed and flushed, or answered 2xx.
    pub async fn write(&self, meta: &Value, event: &Value) -> Result<(), String> {
        match self {
            Sink::Stdout => {
                let mut line = meta.clone();
                line["event"] = event.clone();
                let mut text = serde_json::to_vec(&line).expect("JSON always serializes");
                text.push(b'\n');
                let mut out = std::io::stdout().lock();
                out.write_all(&text)
                    .and_then(|()| out.flush())
                    .map_err(|e| format!("cannot write to stdout: {e}"))
            }
            Sink::Url(endpoint) => {
                let Endpoint { client, url } = endpoint.as_ref();
                let body = Bytes::from(serde_json::to_vec(event).expect("JSON always serializes"));
                let post = || async {
                    let request = hyper::Request::post(url.clone())
                        .header("content-type", crate::event::CONTENT_TYPE)
                        .body(Full::new(body.clone()))
                        .expect("a valid request");
                    match client.request(request).await {
                        Ok(response) if response.status().is_success() => Ok(()),
                        Ok(response) => Err(format!("{url} answered {}", response.status())),
                        Err(error) => Err(format!("{url} did not answer: {error}")),
                    }
                };
                let backoff = ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(50))
                    .with_max_delay(Duration::from_secs(10))
                    .without_max_times();
                post.retry(backoff)
                    .notify(|error, delay| {
                        tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "An event was not taken; retrying.")
                    })
                    .await
            }
        }
    }
}
